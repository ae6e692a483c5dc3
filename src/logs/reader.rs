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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch, Semaphore};

use super::stream::StreamMeta;
use super::time::now_ms;
use super::writer::{Msg, Shared};

/// Largest read, in bytes: the default capacity of a Linux pipe, so a full pipe is
/// emptied in one read.
pub const READ_SIZE: usize = 64 * 1024;

/// Reads `pipe` until end of file (or a read error, or `stop`), sending every chunk to the
/// writer, then an end-of-file message so the writer emits the unterminated last line.
///
/// The stream's [`Msg::Open`] is not sent here but by [`super::Logs::attach`], on the
/// caller's thread: so it reaches the writer before any control message sent after the
/// attach (a [`super::Logs::configure`] that removes the app must find the stream).
pub(super) async fn read_pipe(
    id: u64,
    meta: StreamMeta,
    pipe: pipe::Receiver,
    tx: mpsc::UnboundedSender<Msg>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    budget: Arc<Semaphore>,
) {
    loop {
        let ready = tokio::select! {
            // Stop first: a child that writes without pause would otherwise keep the pipe
            // ready forever and shutdown would never be observed.
            biased;
            // Also completes when the sender is gone (Logs dropped without finish).
            _ = stop.wait_for(|stop| *stop) => break,
            ready = pipe.readable() => ready,
        };
        // Taken once data is there, not before: an idle pipe must not hold budget that its
        // app's busy pipes need.
        let permit = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            permit = Arc::clone(&budget).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // closed: only when the pipeline is torn down
            },
        };
        // Allocated only once data is there, so an idle pipe holds no buffer.
        let mut buf = Vec::with_capacity(READ_SIZE);
        let read = match ready {
            Ok(()) => pipe.try_read_buf(&mut buf),
            Err(e) => Err(e),
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                // A short read would otherwise pin 64 KiB per queued message; shrinking a
                // heap block in place is cheap.
                if n <= READ_SIZE / 2 {
                    buf.shrink_to_fit();
                }
                let msg = Msg::Chunk {
                    id,
                    ms: now_ms(),
                    bytes: buf,
                    _permit: Some(permit),
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            // Readiness can be spurious; try_read_buf then clears it, so readable() waits.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                shared.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(app = %meta.app, index = meta.index, stream = %meta.stream, error = %e, "reading child output failed; stream closed");
                break;
            }
        }
    }
    let _ = tx.send(Msg::Eof { id, ms: now_ms() });
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
            let (tx, mut rx) = mpsc::unbounded_channel();
            let (_stop_tx, stop) = watch::channel(false);
            let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
            let meta = StreamMeta {
                app: Arc::from("a"),
                index: 0,
                pid: 1,
                stream: Stream::Out,
            };
            let pipe = pipe::Receiver::from_owned_fd(r).unwrap();
            let shared = Arc::new(Shared::default());
            tokio::spawn(read_pipe(
                0,
                meta,
                pipe,
                tx,
                stop,
                shared,
                Arc::clone(&budget),
            ));
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
