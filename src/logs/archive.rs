//! Rotated log files on disk: opening a log file, shifting `<file>.1`, `<file>.2`, … at a
//! rotation, deleting them (`flush`), and the compressor thread that gzips them.
//!
//! Owns every rename, delete and gzip of rotated files. Never decides when to rotate
//! ([`super::rotate`] does, for the writer thread) and never writes a record.
//!
//! **Why a rotation loses and duplicates nothing**: the writer thread is the only writer
//! of a log file. It rotates between two of its own writes: it renames the file away
//! and opens a new one before it writes the next record, so every record is in exactly
//! one file. The rename is atomic, and the pipe readers keep queuing meanwhile (bounded,
//! see [`super`]).
//!
//! **Compression off the write path**: the writer only renames, then hands the file to the
//! compressor thread by identity (device and inode), not by name, because more rotations
//! may shift its name while it is being compressed. The compressor writes
//! `<file>.<k>.gz.tmp`, syncs it, and then, under the lock that the writer's renames also
//! take, finds the file's current index `k`, renames the result to `<file>.<k>.gz` and
//! deletes `<file>.<k>`. A file deleted meanwhile (retention, flush) just has its result
//! discarded. The lock is held only for renames, never while compressing, so the writer
//! never waits for gzip. Interrupted work (supd killed mid-compression) is finished at the
//! next start: leftover `.gz.tmp` files are deleted and plain rotated files compressed.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, BufWriter};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::rotate::{self, plan_shift, rotated_name, tmp_name, Kind};

/// Creates the directory of `path` if needed (mode 0750, before umask) and opens the file
/// for appending (`O_APPEND | O_CREAT | O_CLOEXEC`, mode 0640).
pub fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        // std sets O_CLOEXEC already; spelled out because no log fd may leak into a child.
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// A file's identity, which survives renames.
type FileId = (u64, u64);

fn id_of(meta: &fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// A compression to do: the rotated file `id` of the log file `base`.
#[derive(Debug)]
struct Job {
    base: PathBuf,
    retain: u32,
    id: FileId,
}

/// The rotated files of every log file, and the compressor thread (started at the first
/// compression).
#[derive(Debug, Default)]
pub(crate) struct Archive {
    /// Taken for every rename or delete of rotated files, by the writer and the compressor.
    lock: Arc<Mutex<()>>,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Archive {
    /// Rotates `base`: shifts its rotated files up by one, keeping `retain` of them, and
    /// renames `base` to `<base>.1` (with `retain` = 0, deletes it). `current` is the open
    /// handle of `base`, to know which file to compress when `compress` is set. The caller
    /// opens a new `base` afterwards.
    pub fn rotate(
        &mut self,
        base: &Path,
        current: Option<&File>,
        retain: u32,
        compress: bool,
    ) -> io::Result<()> {
        let id = match current {
            Some(file) => file.metadata().map(|m| id_of(&m)).ok(),
            None => fs::metadata(base).map(|m| id_of(&m)).ok(),
        };
        {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            if retain == 0 {
                return remove_if_exists(base);
            }
            let exists = |k| {
                rotated_name(base, k, false).symlink_metadata().is_ok()
                    || rotated_name(base, k, true).symlink_metadata().is_ok()
            };
            let shift = plan_shift(retain, exists);
            let mut first_error = Ok(());
            if let Some(k) = shift.delete {
                for gz in [false, true] {
                    keep_first(
                        &mut first_error,
                        remove_if_exists(&rotated_name(base, k, gz)),
                    );
                }
            }
            for (from, to) in shift.renames {
                for gz in [false, true] {
                    let from = rotated_name(base, from, gz);
                    let to = rotated_name(base, to, gz);
                    keep_first(&mut first_error, rename_if_exists(&from, &to));
                }
            }
            fs::rename(base, rotated_name(base, 1, false))?;
            first_error?;
        }
        if let (true, Some(id)) = (compress, id) {
            self.queue(Job {
                base: base.to_path_buf(),
                retain,
                id,
            });
        }
        Ok(())
    }

    /// Deletes every rotated file of `base`, compressed or not (`pm2 flush`). A
    /// compression in progress finds its file gone and discards its result.
    pub fn purge(&self, base: &Path) -> io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut first_error = Ok(());
        for (_, kind, path) in scan(base)? {
            if kind != Kind::Tmp {
                keep_first(&mut first_error, remove_if_exists(&path));
            }
        }
        first_error
    }

    /// When a log file is opened (at start, or by a new configuration): finishes what an
    /// earlier writer of it left. Deletes interrupted compressions and rotated files past
    /// `retain`; with `compress`, queues every plain rotated file (or deletes it when its
    /// `.gz` exists: the rename to `.gz` happens only once the gzip is complete and
    /// synced, so the pair means the delete was interrupted).
    ///
    /// Under the lock of the renames: while supd runs, a compression of `base` may be
    /// under way. If it loses its `.gz.tmp` here, its rename fails, the plain file stays
    /// and the job queued here compresses it.
    pub fn recover(&mut self, base: &Path, retain: u32, compress: bool) -> io::Result<()> {
        let lock = Arc::clone(&self.lock);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut first_error = Ok(());
        let files = scan(base)?;
        for (k, kind, path) in &files {
            if *kind == Kind::Tmp || *k > retain {
                keep_first(&mut first_error, remove_if_exists(path));
            }
        }
        if compress {
            for (k, kind, path) in &files {
                if *kind != Kind::Plain || *k > retain {
                    continue;
                }
                if rotated_name(base, *k, true).exists() {
                    keep_first(&mut first_error, remove_if_exists(path));
                } else if let Ok(meta) = path.symlink_metadata() {
                    self.queue(Job {
                        base: base.to_path_buf(),
                        retain,
                        id: id_of(&meta),
                    });
                }
            }
        }
        first_error
    }

    /// Waits for the queued compressions to finish.
    pub fn finish(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn queue(&mut self, job: Job) {
        if self.jobs.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let lock = Arc::clone(&self.lock);
            let spawned = std::thread::Builder::new()
                .name("sup-logs-gzip".into())
                .spawn(move || {
                    for job in rx {
                        compress(&lock, &job);
                    }
                });
            match spawned {
                Ok(thread) => {
                    self.jobs = Some(tx);
                    self.thread = Some(thread);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the log compressor; rotated logs stay uncompressed");
                    return;
                }
            }
        }
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

/// The rotated files of `base` present in its directory: (index, kind, path).
fn scan(base: &Path) -> io::Result<Vec<(u32, Kind, PathBuf)>> {
    let (Some(dir), Some(name)) = (base.parent(), base.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some((k, kind)) = rotate::parse_rotated(name, &entry.file_name()) {
            found.push((k, kind, entry.path()));
        }
    }
    found.sort_by_key(|(k, _, _)| *k);
    Ok(found)
}

/// The index at which the rotated file `id` of `base` sits now, if it still exists.
fn find(base: &Path, retain: u32, id: FileId) -> Option<u32> {
    (1..=retain).find(|&k| {
        rotated_name(base, k, false)
            .symlink_metadata()
            .is_ok_and(|m| id_of(&m) == id)
    })
}

/// The compressor thread's work for one file (module doc).
fn compress(lock: &Mutex<()>, job: &Job) {
    let (source, k) = {
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(k) = find(&job.base, job.retain, job.id) else {
            return; // deleted before its turn came
        };
        // Opened under the lock: the name cannot move to another file in between.
        match File::open(rotated_name(&job.base, k, false)) {
            Ok(file) => (file, k),
            Err(e) => {
                tracing::warn!(file = %job.base.display(), error = %e, "cannot read a rotated log to compress it");
                return;
            }
        }
    };
    let tmp = tmp_name(&job.base, k);
    let written = (|| -> io::Result<()> {
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        let mut gz = GzEncoder::new(
            BufWriter::with_capacity(256 * 1024, out),
            Compression::default(),
        );
        io::copy(&mut BufReader::with_capacity(256 * 1024, source), &mut gz)?;
        let out = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        // Synced before the rename: a `.gz` that exists is complete (see recover).
        out.sync_all()
    })();
    let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = written {
        tracing::warn!(file = %tmp.display(), error = %e, "cannot compress a rotated log; it stays uncompressed");
        let _ = fs::remove_file(&tmp);
        return;
    }
    let Some(k) = find(&job.base, job.retain, job.id) else {
        let _ = fs::remove_file(&tmp);
        return;
    };
    let plain = rotated_name(&job.base, k, false);
    if let Err(e) = fs::rename(&tmp, rotated_name(&job.base, k, true)) {
        tracing::warn!(file = %tmp.display(), error = %e, "cannot rename a compressed log");
        let _ = fs::remove_file(&tmp);
        return;
    }
    if let Err(e) = fs::remove_file(&plain) {
        tracing::warn!(file = %plain.display(), error = %e, "cannot delete a rotated log after compressing it");
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn keep_first(first: &mut io::Result<()>, next: io::Result<()>) {
    if first.is_ok() {
        *first = next;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::tests::TempDir;
    use std::io::{Read, Write};

    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writes `text` as the current file, rotates it, like the writer does.
    fn rotate_with(archive: &mut Archive, base: &Path, text: &str, retain: u32, compress: bool) {
        let mut file = open_log(base).unwrap();
        file.write_all(text.as_bytes()).unwrap();
        archive.rotate(base, Some(&file), retain, compress).unwrap();
    }

    #[test]
    fn rotations_shift_and_retain() {
        let tmp = TempDir::new("shift");
        let base = tmp.0.join("a.log");
        let mut archive = Archive::default();
        for i in 1..=5 {
            rotate_with(&mut archive, &base, &format!("gen {i}\n"), 3, false);
        }
        assert_eq!(names(&tmp.0), ["a.log.1", "a.log.2", "a.log.3"]);
        for (k, gen) in [(1, 5), (2, 4), (3, 3)] {
            let text = fs::read_to_string(rotated_name(&base, k, false)).unwrap();
            assert_eq!(text, format!("gen {gen}\n"));
        }
        rotate_with(&mut archive, &base, "gone\n", 0, false);
        assert!(!base.exists());
        archive.purge(&base).unwrap();
        assert!(names(&tmp.0).is_empty());
        archive.finish();
    }

    #[test]
    fn compression_follows_the_file_through_shifts() {
        let tmp = TempDir::new("gz");
        let base = tmp.0.join("a.log");
        let mut archive = Archive::default();
        // Several rotations queue compressions while names keep shifting.
        for i in 1..=4 {
            rotate_with(
                &mut archive,
                &base,
                &format!("gen {i}\n").repeat(1000),
                3,
                true,
            );
        }
        archive.finish();
        assert_eq!(names(&tmp.0), ["a.log.1.gz", "a.log.2.gz", "a.log.3.gz"]);
        for (k, gen) in [(1, 4), (2, 3), (3, 2)] {
            let text = gunzip(&rotated_name(&base, k, true));
            assert_eq!(text, format!("gen {gen}\n").repeat(1000));
        }
    }

    #[test]
    fn recovery_finishes_interrupted_work() {
        let tmp = TempDir::new("recover");
        let base = tmp.0.join("a.log");
        fs::write(rotated_name(&base, 1, false), "one\n").unwrap();
        fs::write(rotated_name(&base, 2, false), "two\n").unwrap();
        fs::write(rotated_name(&base, 2, true), "two, compressed").unwrap();
        fs::write(tmp_name(&base, 3), "half").unwrap();
        fs::write(rotated_name(&base, 4, true), "past retain").unwrap();
        fs::write(tmp.0.join("a.log.old"), "not ours").unwrap();
        let mut archive = Archive::default();
        archive.recover(&base, 3, true).unwrap();
        archive.finish();
        assert_eq!(names(&tmp.0), ["a.log.1.gz", "a.log.2.gz", "a.log.old"]);
        assert_eq!(gunzip(&rotated_name(&base, 1, true)), "one\n");

        // Without compression, plain files stay.
        fs::write(rotated_name(&base, 3, false), "three\n").unwrap();
        let mut archive = Archive::default();
        archive.recover(&base, 3, false).unwrap();
        archive.finish();
        assert_eq!(
            names(&tmp.0),
            ["a.log.1.gz", "a.log.2.gz", "a.log.3", "a.log.old"]
        );
    }

    #[test]
    fn a_file_purged_before_its_compression_is_not_resurrected() {
        let tmp = TempDir::new("purge-gz");
        let base = tmp.0.join("a.log");
        let mut archive = Archive::default();
        let mut file = open_log(&base).unwrap();
        file.write_all(b"x\n").unwrap();
        let id = id_of(&file.metadata().unwrap());
        archive.rotate(&base, Some(&file), 2, false).unwrap();
        archive.purge(&base).unwrap();
        // The job a compressing rotation would have queued comes after the purge.
        archive.queue(Job {
            base: base.clone(),
            retain: 2,
            id,
        });
        archive.finish();
        assert!(names(&tmp.0).is_empty());
    }
}
