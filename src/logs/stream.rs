//! Whose output a pipe carries: stdout or stderr, and the app, instance and pid of the
//! process writing it.
//!
//! Plain data, named once here and shared by every stage of the pipeline. Never does I/O.

use std::fmt;
use std::sync::Arc;

/// Which output of a child a pipe carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl Stream {
    /// `"out"` or `"err"`, as written in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose output a pipe carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    /// The app's name, as in the configuration.
    pub app: Arc<str>,
    /// The instance index, 0-based.
    pub index: u32,
    /// The child's pid (in JSON records and followers' records; not in text lines).
    pub pid: i32,
    /// stdout or stderr.
    pub stream: Stream,
}
