//! Followers (`supctl logs -f`): live copies of the records the writer thread writes.
//!
//! Owns the list of followers and the skip accounting. Never blocks the writer: each
//! follower has a bounded queue ([`FOLLOW_QUEUE`] records); when it is full the record is
//! skipped for that follower only and counted, and before its next record the follower
//! receives a note `[supd] N records skipped`. A follower whose receiver is gone is
//! dropped. Records are built only for records some follower wants.

use tokio::sync::mpsc::{self, error::TrySendError};

use super::record::{Filter, Record};
use super::stream::Stream;

/// Records that may wait for one follower before the next ones are skipped for it.
pub const FOLLOW_QUEUE: usize = 1024;

/// The app named in a skip note of a follower of every app.
pub const ALL_APPS: &str = "supd";

#[derive(Debug)]
struct Follower {
    filter: Filter,
    tx: mpsc::Sender<Record>,
    /// Records not delivered since the last one that was.
    skipped: u64,
}

/// Every follower of the log pipeline.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    list: Vec<Follower>,
}

impl Followers {
    /// A new follower and the receiver of its queue.
    pub fn channel() -> (mpsc::Sender<Record>, mpsc::Receiver<Record>) {
        mpsc::channel(FOLLOW_QUEUE)
    }

    pub fn add(&mut self, filter: Filter, tx: mpsc::Sender<Record>) {
        self.list.push(Follower {
            filter,
            tx,
            skipped: 0,
        });
    }

    /// Whether any follower wants a record of `app`, `instance`, `stream`: checked before
    /// a record is built, so without followers a record costs nothing.
    #[inline]
    pub fn want(&self, app: &str, instance: Option<u32>, stream: Stream) -> bool {
        !self.list.is_empty()
            && self
                .list
                .iter()
                .any(|f| f.filter.matches(app, instance, stream))
    }

    /// Offers `record` to every follower that wants it, without ever waiting.
    pub fn send(&mut self, record: &Record) {
        self.list.retain_mut(|f| {
            if !f.filter.accepts(record) {
                return true;
            }
            if f.skipped > 0 {
                let app = f.filter.app.as_deref().unwrap_or(ALL_APPS);
                let note = Record::note(
                    record.ts_ms,
                    app,
                    format!("[supd] {} records skipped", f.skipped),
                );
                match f.tx.try_send(note) {
                    Ok(()) => f.skipped = 0,
                    Err(TrySendError::Full(_)) => {
                        f.skipped += 1;
                        return true;
                    }
                    Err(TrySendError::Closed(_)) => return false,
                }
            }
            match f.tx.try_send(record.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    f.skipped += 1;
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Drops the followers whose receiver is gone.
    pub fn prune(&mut self) {
        self.list.retain(|f| !f.tx.is_closed());
    }

    /// How many followers there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn rec(app: &str, n: u32) -> Record {
        Record {
            ts_ms: i64::from(n),
            app: app.into(),
            instance: Some(0),
            pid: Some(1),
            stream: Stream::Out,
            msg: format!("line {n}").into_bytes(),
            cont: false,
            embedded: false,
        }
    }

    #[test]
    fn a_full_queue_skips_then_says_how_many() {
        let mut f = Followers::default();
        let (tx, mut rx) = Followers::channel();
        let filter = Filter {
            app: Some("a".into()),
            ..Filter::default()
        };
        f.add(filter, tx);
        let total = FOLLOW_QUEUE as u32 + 10;
        for n in 0..total {
            f.send(&rec("a", n));
            f.send(&rec("b", n)); // not wanted: neither queued nor counted
        }
        for n in 0..FOLLOW_QUEUE as u32 {
            assert_eq!(rx.try_recv().unwrap(), rec("a", n));
        }
        assert!(rx.try_recv().is_err());
        f.send(&rec("a", total));
        let note = rx.try_recv().unwrap();
        assert_eq!(note.msg, b"[supd] 10 records skipped");
        assert_eq!((note.app.as_str(), note.instance), ("a", None));
        assert_eq!(rx.try_recv().unwrap(), rec("a", total));
    }

    #[test]
    fn gone_followers_are_dropped() {
        let mut f = Followers::default();
        let (tx, rx) = Followers::channel();
        f.add(Filter::default(), tx);
        let (tx, _keep) = Followers::channel();
        f.add(
            Filter {
                app: Some("other".into()),
                ..Filter::default()
            },
            tx,
        );
        assert!(f.want("a", Some(0), Stream::Out));
        drop(rx);
        f.send(&rec("a", 0));
        assert_eq!(f.len(), 1);
        assert!(!f.want("a", Some(0), Stream::Out));
        drop(_keep);
        f.prune();
        assert_eq!(f.len(), 0);
    }
}
