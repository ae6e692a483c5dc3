//! The `log_*` keys: their bounds, and the check that each log file belongs to one app.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::Walker;

/// The smallest `log_max_line`: shorter limits would split ordinary lines.
pub const MIN_LOG_MAX_LINE: u64 = 1024;
/// The largest `log_max_line`: a line is held whole in memory until it ends.
pub const MAX_LOG_MAX_LINE: u64 = 16 * 1024 * 1024;
/// The smallest `log_max_size`: smaller files would rotate at nearly every line.
pub const MIN_LOG_MAX_SIZE: u64 = 1024;
/// The largest `log_retain`: every rotation renames each kept file once.
pub const MAX_LOG_RETAIN: u32 = 1000;

impl Walker<'_> {
    /// Two apps appending to one file would rotate it under each other: each file belongs
    /// to one app. Reported at the `log_file` (or app name) of every later claimant.
    pub(super) fn check_log_files(&mut self, files: &[(PathBuf, String, Range<usize>, String)]) {
        let mut seen: BTreeMap<&Path, &str> = BTreeMap::new();
        for (path, app, span, key) in files {
            match seen.get(path.as_path()) {
                Some(&first) if first != app => self.sink.error(
                    span.clone(),
                    Some(key),
                    format!(
                        "log file `{}` of app `{app}` is already the log file of app `{first}`",
                        path.display()
                    ),
                    Some("a `log_file` of its own for each app"),
                ),
                Some(_) => {}
                None => {
                    seen.insert(path, app);
                }
            }
        }
    }
}
