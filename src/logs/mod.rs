//! The log pipeline: every child's stdout and stderr, read from its pipes and written as
//! time-stamped records (text or JSON lines, DESIGN §3) to its app's log files and/or
//! supd's stdout, with rotation, retention and compression.
//!
//! Owns the pipe readers, the writer thread, the compressor thread and the log files.
//! Never touches supervisor state: it only moves bytes, and reports through counters
//! ([`Logs::dropped`]) and its own small types ([`Record`], [`Filter`]).
//!
//! ```text
//!  child pipe ─► reader task (event loop) ──(id, time, ≤64 KiB chunk, budget permit)──┐
//!                                                                                     ▼
//!  control calls (reopen, flush, follow, configure) ──────────────────────► one channel
//!                                                                                     │
//!  writer thread: framer ─► format ─► rotate? ─► write per file/stdout ◄──────────────┘
//!                                        │                   └─► followers (bounded, skip)
//!                                        └─► compressor thread (gzip, off the write path)
//! ```
//! - [`pipeline`]: [`Logs`], the handle of the running pipeline: starts the writer thread,
//!   attaches the readers, opens the outputs of a new configuration, passes control calls
//!   on, shuts down.
//! - [`reader`]: one tokio task per pipe; reads and stamps chunks, nothing more, so the
//!   event loop stays light.
//! - [`pool`]: the read buffers' size, and those kept for reuse after a flood.
//! - [`framer`] (pure): bytes → lines; `\r\n`, over-long lines, invalid UTF-8.
//! - [`format`](mod@format) (pure): line → record bytes, text or JSON (the JSON scheme
//!   for invalid UTF-8 is documented there).
//! - [`record`] (pure): [`Record`], [`Filter`], [`parse_line`] (either format back).
//! - [`rotate`] (pure): when to rotate, names of rotated files.
//! - [`writer`]: the one thread that takes batches, frames, formats, writes and rotates.
//! - [`output`]: an app's files and stdout; counts what an I/O error drops, and marks it.
//! - [`watch`]: `ready = { log = "…" }`, a regex matched on the writer thread against a
//!   new process's lines.
//! - [`archive`]: renames, deletes and gzips rotated files (the compressor thread).
//! - [`follow`]: live copies for followers, never slowing the writer.
//! - [`tail`](mod@tail): the last records of files, read back (blocking).
//! - [`stream`]: [`Stream`] and [`StreamMeta`], whose output a pipe carries.
//! - [`time`]: RFC 3339 timestamps without a date crate.
//!
//! A record's time is when supd read the chunk that completed it (one clock read per
//! chunk, not per line). Each attached pipe has its own framer, so the lines of different
//! streams, instances and pids never mix, even in the same file.
//!
//! **Outputs.** Per app ([`crate::config::LogSettings`]): `<log_dir>/<app>.log` or
//! `log_file`, holding both streams; with `log_split`, `<stem>.out.<ext>` and
//! `<stem>.err.<ext>`. Files are opened `O_APPEND`, never truncated at start, so logs
//! survive crashes and restarts. `log_target` sends the same records to supd's stdout
//! instead (`stdout`) or as well (`both`); its default is stdout when supd is PID 1.
//!
//! **A new configuration** ([`Logs::configure`], for `supctl apply` and SIGHUP) adds,
//! changes and removes apps without restarting a process or losing a line: the writer
//! switches an app to its new outputs between two writes, its running processes' pipes
//! now flowing there; a removed app's outputs stay open until its pipes reach end of file.
//!
//! **Nothing is lost to speed** (DESIGN §2): each app has an in-flight budget of
//! [`APP_BUDGET`] chunks. A reader takes one unit before each read and the writer gives
//! it back once the chunk is written; when the writer falls behind, the app's readers
//! wait, stop reading, the pipe fills and the child blocks in `write`. Only an I/O error
//! drops lines, and then they are counted per app (a line lost by both outputs of a
//! `both` app counts twice) and a marker record `[supd] N lines dropped (<error>)`
//! (`instance` `-`/null) is written before the next records once writing works again.
//! One writer thread serves every app, so an output that blocks (a stalled disk, a stdout
//! pipe nobody reads) slows every app, as a slow disk would; it never grows memory.
//!
//! **Memory bound**, whatever the children write:
//! - per app: queued chunks ≤ [`APP_BUDGET`] × [`reader::READ_SIZE`] = 16 × 64 KiB =
//!   **1 MiB**, for all its instances and streams together; plus, per attached stream,
//!   the framer's partial line: ≤ 4 KiB, up to `log_max_line` + 1 while a longer line is
//!   incomplete;
//! - the writer: a batch ≤ [`writer::BATCH_BYTES`] + 64 KiB; formatted text per output ≤
//!   [`writer::WRITE_AT`] + one record (a record is at most ~6 × `log_max_line` when a
//!   binary line is escaped as JSON);
//! - per follower: ≤ [`follow::FOLLOW_QUEUE`] records waiting;
//! - read buffers kept for reuse once written: ≤ [`pool::POOL_BUFFERS`] × 64 KiB =
//!   1 MiB in all, only after a flood has needed them.
//!
//! An idle reader holds no buffer.

pub mod archive;
pub mod follow;
pub mod format;
pub mod framer;
pub mod output;
pub mod pipeline;
pub mod pool;
pub mod reader;
pub mod record;
pub mod rotate;
pub mod stream;
pub mod tail;
pub mod time;
pub mod watch;
pub mod writer;

pub use self::pipeline::{AppLog, Logs, Paused, APP_BUDGET, FLUSH_GRACE};
pub use self::record::{parse_line, Filter, Record};
pub use self::stream::{Stream, StreamMeta};
pub use self::tail::tail;
pub use self::watch::LineWatch;

/// Helpers shared by the tests of the pipeline's modules.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory removed when dropped.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sup-logs-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
