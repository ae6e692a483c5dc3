//! `supctl logs`: the last records from the files (read on a thread), then live records
//! from the writer, streamed to the client until it hangs up or supd exits.

use tokio::sync::oneshot;

use super::Responder;
use crate::control::proto::{self, LogsEnd, Records};
use crate::core::{self, LogQuery};
use crate::logs::{self, Filter, Logs, Record, Stream};

/// Records per streamed reply: big enough to move a flood, small enough to stay prompt.
const BATCH: usize = 256;

/// Start streaming `query` to `responder` (returns at once; the work runs on a task).
/// `apps`: every app, for a query that names none.
pub(super) fn show(logs: &Logs, apps: &[String], query: LogQuery, responder: Responder) {
    let filter = Filter {
        app: query.app.clone(),
        index: query.index,
        stream: query.stream.map(|s| match s {
            core::Stream::Out => Stream::Out,
            core::Stream::Err => Stream::Err,
        }),
    };
    // Subscribe before reading the files, so nothing written in between is missed; the
    // overlap is removed below.
    let live = query.follow.then(|| logs.follow(filter.clone()));
    let sources: Vec<_> = match &query.app {
        Some(app) => logs.paths(app),
        None => apps.iter().flat_map(|app| logs.paths(app)).collect(),
    };
    let n = query.lines as usize;
    let (tx, past) = oneshot::channel();
    let tail_filter = filter.clone();
    let spawned = std::thread::Builder::new()
        .name("supd-logs-tail".into())
        .spawn(move || {
            let _ = tx.send(logs::tail(&sources, &tail_filter, n));
        });
    let Responder { reply, stream, .. } = responder;
    tokio::spawn(async move {
        let Some(stream) = stream else {
            let _ = reply.send(Ok(proto::data(&Records::default())));
            return;
        };
        let past = match (spawned, past.await) {
            (Ok(_), Ok(Ok(records))) => records,
            (_, Ok(Err(e))) => {
                let _ = reply.send(Err(crate::control::proto::ErrorBody {
                    kind: crate::control::proto::ErrorKind::LogIo,
                    message: format!("cannot read the log files: {e}"),
                }));
                return;
            }
            _ => Vec::new(),
        };
        // Records of the last millisecond of the tail may come again from the follower
        // (it subscribed before the files were read): recognise them by content.
        let last = past.last().map(|r| r.ts_ms);
        let mut overlap: Vec<Record> = past
            .iter()
            .rev()
            .take_while(|r| Some(r.ts_ms) == last)
            .cloned()
            .collect();
        for chunk in past.chunks(BATCH) {
            if stream.send(batch(chunk)).await.is_err() {
                return;
            }
        }
        if let Some(mut live) = live {
            let mut pending = Vec::new();
            loop {
                tokio::select! {
                    record = live.recv() => match record {
                        // Already sent from the file.
                        Some(r) if last.is_some_and(|t| r.ts_ms < t) => {}
                        Some(r) if Some(r.ts_ms) == last && overlap.contains(&r) => {
                            if let Some(i) = overlap.iter().position(|o| *o == r) {
                                overlap.swap_remove(i);
                            }
                        }
                        Some(r) => {
                            pending.push(r);
                            while pending.len() < BATCH {
                                match live.try_recv() {
                                    Ok(r) => pending.push(r),
                                    Err(_) => break,
                                }
                            }
                            if stream.send(batch(&pending)).await.is_err() {
                                return;
                            }
                            pending.clear();
                        }
                        // The writer is gone: supd is exiting.
                        None => break,
                    },
                    _ = stream.closed() => return,
                }
            }
        }
        let _ = reply.send(Ok(proto::data(&LogsEnd { end: true })));
    });
}

fn batch(records: &[Record]) -> crate::control::proto::Data {
    proto::data(&Records {
        records: records.iter().map(Record::to_json).collect(),
    })
}
