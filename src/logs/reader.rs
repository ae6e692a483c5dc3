//! The reader task of one child pipe: reads chunks as they come and hands them, stamped
//! with the time they were read, to the writer thread.
//!
//! Owns nothing but the pipe. Never frames, formats or writes (that is the writer thread's
//! work, to keep the event loop light), and never drops a chunk it has read. Before each
//! read it takes one unit of its app's in-flight budget (a semaphore of
//! [`super::APP_BUDGET`] chunks, returned when the writer has written the chunk); when the
//! app's budget is spent it waits, stops reading, the pipe fills and the child blocks on
//! its write (DESIGN §2). Other apps have budgets of their own, so one app's flood never
//! holds the way for them.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch, Semaphore};

use super::stream::StreamMeta;
use super::time::now_ms;
use super::writer::{Msg, Shared};

pub use super::pool::READ_SIZE;

/// A stream read again this soon after its last short read is busy (a program writing
/// a line at a time, fast): read on every wake-up, it would make the child pay a wake-up
/// per line (Linux wakes an epoll waiter on every write to a pipe it watches), and supd
/// a wake-up, a read and a hand-over per line.
pub const BUSY_WITHIN: Duration = Duration::from_micros(500);

/// How often a busy stream is read. Its pipe is out of the event loop's epoll set
/// meanwhile, so the child's writes wake nobody; a line waits at most this long before
/// it is written, followed or matched. A tick that finds the pipe empty makes the stream
/// idle again: woken by epoll, read at once.
pub const COALESCE: Duration = Duration::from_millis(1);

/// The pipe of a busy stream is grown to this, if the system allows (Linux caps it at
/// `/proc/sys/fs/pipe-max-size`, and per user): a child writing 100 MB/s fills it in
/// 10 ms, far longer than [`COALESCE`], so it does not block between two reads. Kernel
/// memory, taken only by streams that are busy or flooding (a read that emptied a full
/// default-size pipe).
pub const BUSY_PIPE: usize = 1024 * 1024;

/// How a stream is read now.
enum Mode {
    /// Idle: registered with the event loop, read when it becomes readable.
    Woken(pipe::Receiver),
    /// Busy: read every [`COALESCE`], out of the epoll set.
    Polled(std::fs::File),
}

/// What the pipeline asks of its readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Halt {
    /// Read on.
    No,
    /// Shutdown's deadline: stop reading; the stream is over.
    Stop,
    /// A re-exec: stop reading and give the pipe back, unread bytes in it, without ending
    /// the stream.
    Pause,
}

fn halted(h: &Halt) -> bool {
    *h != Halt::No
}

/// What one read brought.
enum Read {
    /// This many bytes, sent to the writer.
    Bytes(usize),
    /// Nothing there now.
    Empty,
    /// End of file, a read error, `stop`, or the writer is gone: the stream is over.
    Over,
    /// Asked to halt before reading.
    Halted,
}

/// Reads `pipe` until end of file (or a read error, or `stop`), sending every chunk to the
/// writer, then an end-of-file message so the writer emits the unterminated last line.
/// Asked to pause ([`Halt::Pause`]), it returns the pipe instead, and sends nothing more.
///
/// The stream's [`Msg::Open`] is not sent here but by [`super::Logs::attach`], on the
/// caller's thread: so it reaches the writer before any control message sent after the
/// attach (a [`super::Logs::configure`] that removes the app must find the stream).
pub(super) async fn read_pipe(
    id: u64,
    meta: StreamMeta,
    pipe: pipe::Receiver,
    tx: mpsc::UnboundedSender<Msg>,
    mut stop: watch::Receiver<Halt>,
    shared: Arc<Shared>,
    budget: Arc<Semaphore>,
) -> Option<std::os::fd::OwnedFd> {
    let reader = Reader {
        id,
        meta: &meta,
        tx: &tx,
        shared: &shared,
        budget: &budget,
    };
    let mut mode = Mode::Woken(pipe);
    let mut last_short: Option<Instant> = None;
    let mut grown = false;
    let kept = loop {
        mode = match mode {
            Mode::Woken(pipe) => {
                let ready = tokio::select! {
                    // Stop first: a child that writes without pause would otherwise keep
                    // the pipe ready forever and shutdown would never be observed.
                    biased;
                    // Also completes when the sender is gone (Logs dropped without finish).
                    _ = stop.wait_for(halted) => None,
                    ready = pipe.readable() => Some(ready),
                };
                let Some(ready) = ready else {
                    break Some(Mode::Woken(pipe));
                };
                if let Err(e) = ready {
                    reader.failed(&e);
                    break None;
                }
                let got = reader.read(&mut stop, |buf| pipe.try_read_buf(buf)).await;
                match got {
                    Read::Over => break None,
                    Read::Halted => break Some(Mode::Woken(pipe)),
                    Read::Empty => Mode::Woken(pipe),
                    Read::Bytes(n) if n > READ_SIZE / 2 => {
                        // A full pipe: a flood in big writes. A bigger pipe lets the child
                        // write on while supd writes what it read.
                        if n == READ_SIZE && !grown {
                            grown = true;
                            grow(&pipe);
                        }
                        Mode::Woken(pipe)
                    }
                    Read::Bytes(_) => {
                        // Short reads in quick succession: one line per wake-up.
                        let now = Instant::now();
                        let busy = last_short.is_some_and(|t| now.duration_since(t) < BUSY_WITHIN);
                        last_short = Some(now);
                        match busy {
                            false => Mode::Woken(pipe),
                            true => match pipe.into_nonblocking_fd() {
                                Ok(fd) => {
                                    if !grown {
                                        grown = true;
                                        grow(&fd);
                                    }
                                    Mode::Polled(std::fs::File::from(fd))
                                }
                                Err(e) => {
                                    reader.failed(&e);
                                    break None;
                                }
                            },
                        }
                    }
                }
            }
            Mode::Polled(mut file) => {
                let tick = tokio::select! {
                    biased;
                    _ = stop.wait_for(halted) => false,
                    _ = tokio::time::sleep(COALESCE) => true,
                };
                if !tick {
                    break Some(Mode::Polled(file));
                }
                // Drain what piled up; a tick that finds nothing makes the stream idle.
                let mut took = 0;
                let got = loop {
                    let got = reader
                        .read(&mut stop, |buf| read_into(&mut file, buf))
                        .await;
                    match got {
                        Read::Bytes(n) if n == READ_SIZE => took += n,
                        Read::Bytes(n) => {
                            took += n;
                            break Read::Bytes(n);
                        }
                        got => break got,
                    }
                };
                match got {
                    Read::Over => break None,
                    Read::Halted => break Some(Mode::Polled(file)),
                    _ => {}
                }
                if took > 0 {
                    Mode::Polled(file)
                } else {
                    last_short = None;
                    match pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(file)) {
                        Ok(pipe) => Mode::Woken(pipe),
                        Err(e) => {
                            reader.failed(&e);
                            break None;
                        }
                    }
                }
            }
        };
    };
    if *stop.borrow() == Halt::Pause {
        if let Some(mode) = kept {
            return match mode {
                Mode::Woken(pipe) => pipe.into_nonblocking_fd().ok(),
                Mode::Polled(file) => Some(file.into()),
            };
        }
    }
    let _ = tx.send(Msg::Eof { id, ms: now_ms() });
    None
}

/// One stream's side of the hand-over: budget, chunks, errors.
struct Reader<'a> {
    id: u64,
    meta: &'a StreamMeta,
    tx: &'a mpsc::UnboundedSender<Msg>,
    shared: &'a Shared,
    budget: &'a Arc<Semaphore>,
}

impl Reader<'_> {
    /// Take a unit of the app's budget, read once with `read` (non-blocking) and send
    /// what came to the writer.
    async fn read(
        &self,
        stop: &mut watch::Receiver<Halt>,
        read: impl FnOnce(&mut Vec<u8>) -> std::io::Result<usize>,
    ) -> Read {
        // Taken once data is there, not before: an idle pipe must not hold budget that
        // its app's busy pipes need.
        let permit = tokio::select! {
            biased;
            _ = stop.wait_for(halted) => return Read::Halted,
            permit = Arc::clone(self.budget).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Read::Over, // closed: only when the pipeline is torn down
            },
        };
        // Taken only once data is there, so an idle pipe holds no buffer.
        let mut buf = self.shared.pool.take();
        match read(&mut buf) {
            Ok(0) => Read::Over,
            Ok(n) => {
                // A short read would otherwise pin 64 KiB per queued message; shrinking a
                // heap block in place is cheap.
                if n <= READ_SIZE / 2 {
                    buf.shrink_to_fit();
                }
                let msg = Msg::Chunk {
                    id: self.id,
                    ms: now_ms(),
                    bytes: buf,
                    _permit: Some(permit),
                };
                match self.tx.send(msg) {
                    Ok(()) => Read::Bytes(n),
                    Err(_) => Read::Over,
                }
            }
            // Readiness can be spurious; try_read_buf then clears it, so readable() waits.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                Read::Empty
            }
            Err(e) => {
                self.failed(&e);
                Read::Over
            }
        }
    }

    fn failed(&self, e: &std::io::Error) {
        self.shared.read_errors.fetch_add(1, Ordering::Relaxed);
        let meta = self.meta;
        tracing::warn!(app = %meta.app, index = meta.index, stream = %meta.stream, error = %e, "reading child output failed; stream closed");
    }
}

/// One non-blocking read of at most [`READ_SIZE`] bytes into `buf`'s spare room.
fn read_into(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read as _;
    buf.resize(READ_SIZE, 0);
    let read = file.read(buf);
    buf.truncate(*read.as_ref().unwrap_or(&0));
    read
}

/// Grow a busy stream's pipe to [`BUSY_PIPE`]; where the system refuses, it keeps its size
/// (the child then may wait on a full pipe until the next tick).
fn grow(fd: &impl AsFd) {
    let size = i32::try_from(BUSY_PIPE).unwrap_or(i32::MAX);
    let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::Stream;
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::io::Write;
    use std::time::Duration;

    /// A reader task on a new pipe with `budget`: the pipe's write end, what the reader
    /// sends, and its stop switch (kept alive by the caller).
    fn start_reader(
        budget: Arc<Semaphore>,
    ) -> (
        std::os::fd::OwnedFd,
        mpsc::UnboundedReceiver<Msg>,
        watch::Sender<Halt>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(Halt::No);
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        let meta = StreamMeta {
            app: Arc::from("a"),
            index: 0,
            pid: 1,
            stream: Stream::Out,
        };
        let pipe = pipe::Receiver::from_owned_fd(r).unwrap();
        let shared = Arc::new(Shared::default());
        tokio::spawn(read_pipe(0, meta, pipe, tx, stop, shared, budget));
        (w, rx, stop_tx)
    }

    /// A flood of one line per write is read in order and whole, however the reads fall
    /// (woken or polled), and a line written after the flood, once the stream is idle
    /// again, still arrives.
    #[test]
    fn a_busy_stream_loses_nothing_and_becomes_idle_again() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let budget = Arc::new(Semaphore::new(crate::logs::APP_BUDGET));
            let (w, mut rx, _stop) = start_reader(budget);
            let lines = 20_000;
            let writer = std::thread::spawn(move || {
                let mut w = std::fs::File::from(w);
                for i in 0..lines {
                    w.write_all(format!("line {i}\n").as_bytes()).unwrap();
                }
                w
            });
            let mut got = Vec::new();
            let expected: Vec<u8> = (0..lines)
                .flat_map(|i| format!("line {i}\n").into_bytes())
                .collect();
            while got.len() < expected.len() {
                match rx.recv().await {
                    Some(Msg::Chunk { bytes, .. }) => got.extend(bytes),
                    other => panic!("{other:?}"),
                }
            }
            assert!(got == expected, "every line, whole and in order");
            let mut w = writer.join().unwrap();
            // Not a wait for anything (the late line arrives either way): it lets a polled
            // stream find its pipe empty and go back to epoll first.
            tokio::time::sleep(COALESCE * 3).await;
            w.write_all(b"late\n").unwrap();
            match rx.recv().await {
                Some(Msg::Chunk { bytes, .. }) => assert_eq!(bytes, b"late\n"),
                other => panic!("{other:?}"),
            }
            drop(w);
            assert!(matches!(rx.recv().await, Some(Msg::Eof { .. })));
        });
    }

    /// With its budget spent, a reader leaves the pipe alone until the writer returns a
    /// unit: the app's queued chunks never pass its budget.
    #[test]
    fn a_reader_holds_at_most_its_budget() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let budget = Arc::new(Semaphore::new(2));
            let (w, mut rx, _stop) = start_reader(Arc::clone(&budget));
            let mut w = std::fs::File::from(w);
            let mut held = Vec::new();
            for _ in 0..2 {
                w.write_all(b"x\n").unwrap();
                held.push(rx.recv().await.unwrap());
            }
            assert_eq!(budget.available_permits(), 0);
            w.write_all(b"more\n").unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
            assert!(waited.is_err(), "read past the budget");
            held.pop(); // the writer wrote one chunk
            match rx.recv().await {
                Some(Msg::Chunk { bytes, .. }) => assert_eq!(bytes, b"more\n"),
                other => panic!("{other:?}"),
            }
        });
    }
}
