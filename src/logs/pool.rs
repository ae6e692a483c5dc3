//! The read buffers: their size, and the few the writer hands back for the readers to
//! fill again.
//!
//! A flood allocated a fresh buffer per read and freed it on the writer thread; the
//! allocator gave the pages back, so every read faulted in and zeroed 16 new pages: a
//! third of the reading thread's time. Buffers are kept only once a flood has used them;
//! an idle supd never fills the pool.

use std::sync::Mutex;

/// Largest read, in bytes: the default capacity of a Linux pipe, so a full pipe is
/// emptied in one read.
pub const READ_SIZE: usize = 64 * 1024;

/// Most buffers kept (one app's budget: 1 MiB).
pub const POOL_BUFFERS: usize = super::APP_BUDGET;

/// Buffers of [`READ_SIZE`] bytes' capacity the writer is done with.
#[derive(Debug, Default)]
pub(crate) struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// An empty buffer of [`READ_SIZE`] bytes' capacity, reused if one is kept.
    pub(crate) fn take(&self) -> Vec<u8> {
        let kept = self.0.lock().ok().and_then(|mut pool| pool.pop());
        match kept {
            Some(mut buf) => {
                buf.clear();
                buf
            }
            None => Vec::with_capacity(READ_SIZE),
        }
    }

    /// Keeps `buf` if it is full-size (a short read shrinks its buffer) and fewer than
    /// [`POOL_BUFFERS`] are kept; frees it otherwise.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if buf.capacity() != READ_SIZE {
            return;
        }
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL_BUFFERS {
                pool.push(buf);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    #[test]
    fn written_read_buffers_are_reused_up_to_the_pool_size() {
        let pool = Pool::default();
        let fresh = pool.take();
        assert_eq!((fresh.len(), fresh.capacity()), (0, READ_SIZE));
        // Shrunk after a short read: not worth keeping.
        pool.give(vec![1, 2, 3]);
        let mut full = Vec::with_capacity(READ_SIZE);
        full.extend_from_slice(b"data");
        let at = full.as_ptr();
        pool.give(full);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at, "the kept buffer comes back");
        assert!(again.is_empty(), "and empty");
        for _ in 0..POOL_BUFFERS + 3 {
            pool.give(Vec::with_capacity(READ_SIZE));
        }
        assert_eq!(pool.0.lock().unwrap().len(), POOL_BUFFERS);
    }
}
