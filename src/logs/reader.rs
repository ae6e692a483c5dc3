//! The reader task of one child pipe: reads chunks as they come and hands them, stamped
//! with the time they were read, to the writer thread.
//!
//! Owns nothing but the pipe. Never frames, formats or writes (that is the writer thread's
//! work, to keep the event loop light), and never drops a chunk it has read: when the
//! channel to the writer is full it waits, stops reading, and the child blocks on its
//! write (DESIGN §2).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use super::time::now_ms;
use super::writer::{Msg, Shared};
use super::StreamMeta;

/// Largest read, in bytes: the default capacity of a Linux pipe, so a full pipe is
/// emptied in one read.
pub const READ_SIZE: usize = 64 * 1024;

/// Reads `pipe` until end of file (or a read error, or `stop`), sending every chunk to the
/// writer, then an end-of-file message so the writer emits the unterminated last line.
pub(super) async fn read_pipe(
    id: u64,
    meta: StreamMeta,
    pipe: pipe::Receiver,
    tx: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let app = Arc::clone(&meta.app);
    let (index, stream) = (meta.index, meta.stream);
    if tx.send(Msg::Open { id, meta }).await.is_err() {
        return; // the writer is gone; nothing could be written anyway
    }
    loop {
        let ready = tokio::select! {
            // Stop first: a child that writes without pause would otherwise keep the pipe
            // ready forever and shutdown would never be observed.
            biased;
            // Also completes when the sender is gone (Logs dropped without finish).
            _ = stop.wait_for(|stop| *stop) => break,
            ready = pipe.readable() => ready,
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
                };
                if tx.send(msg).await.is_err() {
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
                tracing::warn!(app = %app, index, %stream, error = %e, "reading child output failed; stream closed");
                break;
            }
        }
    }
    let _ = tx.send(Msg::Eof { id, ms: now_ms() }).await;
}
