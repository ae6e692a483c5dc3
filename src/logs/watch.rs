//! Readiness watches on output lines (`ready = { log = "…" }`): a new process's regex,
//! matched on the writer thread against that process's lines as they are framed.
//!
//! Owned by the writer thread; [`super::Logs::watch`] only hands a watch over. Never keeps
//! a line and never decides readiness: a match calls the watch's callback once, and the
//! watch is spent.

use std::collections::HashMap;

/// A readiness watch on a process's output lines (see [`super::Logs::watch`]).
pub struct LineWatch {
    /// What a line must match; a line that is not UTF-8 is matched with its bad bytes
    /// replaced by U+FFFD.
    pub regex: regex_lite::Regex,
    /// Called once, with the matching line.
    pub matched: Box<dyn FnOnce(String) + Send>,
}

impl std::fmt::Debug for LineWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWatch")
            .field("regex", &self.regex.as_str())
            .finish()
    }
}

/// The watches still waiting for a line, by pid (usually none).
#[derive(Debug, Default)]
pub(crate) struct Watches(HashMap<i32, LineWatch>);

impl Watches {
    /// Watch the lines of process `pid` from now on.
    pub fn insert(&mut self, pid: i32, watch: LineWatch) {
        self.0.insert(pid, watch);
    }

    /// Take the watch of `pid` out for the lines of one chunk (cheap when none is set).
    pub fn take(&mut self, pid: i32) -> Option<LineWatch> {
        if self.0.is_empty() {
            None
        } else {
            self.0.remove(&pid)
        }
    }

    /// Put back a watch that did not fire.
    pub fn settle(&mut self, pid: i32, watch: Option<LineWatch>) {
        if let Some(w) = watch {
            self.0.insert(pid, w);
        }
    }

    /// Forget the watch of `pid`, if any: one of its pipes closed.
    pub fn end(&mut self, pid: i32) {
        self.0.remove(&pid);
    }
}

/// Fire the watch if `line` matches; it is then spent.
pub(crate) fn check(watch: &mut Option<LineWatch>, line: &[u8]) {
    if watch
        .as_ref()
        .is_some_and(|w| w.regex.is_match(&String::from_utf8_lossy(line)))
    {
        if let Some(w) = watch.take() {
            (w.matched)(String::from_utf8_lossy(line).into_owned());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_watch_fires_once_on_the_first_matching_line_of_its_pid() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let mut watches = Watches::default();
        assert!(watches.take(7).is_none());
        watches.insert(
            7,
            LineWatch {
                regex: regex_lite::Regex::new(r"ready \d+").unwrap(),
                matched: Box::new(move |line| sink.lock().unwrap().push(line)),
            },
        );
        assert!(watches.take(8).is_none(), "another process's lines");

        let mut watch = watches.take(7);
        check(&mut watch, b"starting");
        watches.settle(7, watch);
        let mut watch = watches.take(7);
        check(&mut watch, b"ready 1 \xff");
        check(&mut watch, b"ready 2");
        watches.settle(7, watch);
        assert!(watches.take(7).is_none(), "spent");
        assert_eq!(*seen.lock().unwrap(), ["ready 1 \u{fffd}"]);
    }
}
