//! The sampling thread: reads /proc off the event loop when asked (a memory limit's timer,
//! or a `status` request) and answers with each instance tree's memory and CPU use. It
//! starts with the first request, so a supd without memory limits that nobody asks for
//! status never reads /proc at all.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::core::{Event, Gen, Sample, Slot};
use crate::monitor;

/// How old a /proc read may be to answer a `status` request.
const STATUS_FRESH: Duration = Duration::from_millis(500);

/// A read that took longer is reused for `status` for this many times as long: a script
/// polling status then costs at most a tenth of a core in /proc reads, however many
/// processes there are (at 5000, a read of every `/proc/<pid>/stat` takes ~130 ms).
const STATUS_REUSE_FACTOR: u32 = 10;

/// How long a /proc read that took `took` may answer `status` requests.
fn status_fresh_for(took: Duration) -> Duration {
    STATUS_FRESH.max(took.saturating_mul(STATUS_REUSE_FACTOR))
}

/// What the thread measures.
pub(super) enum Job {
    /// A memory-limit sample of one app: answered as an [`Event::Sampled`].
    App {
        app: usize,
        targets: Vec<(Slot, Gen, i32)>,
    },
    /// For `status`: memory and lifetime CPU ticks of the trees of these leaders, in
    /// their order.
    Trees {
        pids: Vec<i32>,
        reply: oneshot::Sender<Vec<monitor::Usage>>,
    },
}

/// The handle the runtime keeps; the thread is started on first use.
pub(super) struct Sampler {
    jobs: Option<std_mpsc::Sender<Job>>,
    events: mpsc::UnboundedSender<Event>,
}

impl Sampler {
    pub(super) fn new(events: mpsc::UnboundedSender<Event>) -> Sampler {
        Sampler { jobs: None, events }
    }

    pub(super) fn send(&mut self, job: Job) {
        if self.jobs.is_none() {
            let (tx, rx) = std_mpsc::channel();
            let events = self.events.clone();
            let started = std::thread::Builder::new()
                .name("supd-sample".into())
                .spawn(move || run(rx, events));
            match started {
                Ok(_) => self.jobs = Some(tx),
                Err(e) => {
                    tracing::warn!("cannot start the sampling thread: {e}");
                    return;
                }
            }
        }
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

fn run(jobs: std_mpsc::Receiver<Job>, events: mpsc::UnboundedSender<Event>) {
    let page = monitor::page_size();
    let ticks_per_s = monitor::clock_ticks();
    // The previous sample of each tree, for CPU % between samples.
    let mut previous: HashMap<(Slot, Gen), (u64, Instant)> = HashMap::new();
    // The last read of /proc, when it was made and how long it took: `status` asked
    // again soon after reuses it (`status_fresh_for`), so a script polling status does
    // not rescan /proc every time.
    let mut last: Option<(Instant, Duration, monitor::Tree)> = None;
    while let Ok(job) = jobs.recv() {
        let reuse = matches!(job, Job::Trees { .. })
            && last
                .as_ref()
                .is_some_and(|(at, took, _)| at.elapsed() < status_fresh_for(*took));
        if !reuse {
            let at = Instant::now();
            let tree = monitor::Tree::new(monitor::snapshot(), page);
            last = Some((at, at.elapsed(), tree));
        }
        let Some((_, _, tree)) = &last else {
            continue;
        };
        match job {
            Job::App { app, targets } => {
                let now = Instant::now();
                let samples = targets
                    .into_iter()
                    .map(|(slot, gen, pid)| {
                        let usage = tree.usage(pid);
                        let cpu_percent = previous.get(&(slot, gen)).map(|&(ticks, at)| {
                            monitor::cpu_percent(ticks, usage.cpu_ticks, now - at, ticks_per_s)
                        });
                        previous.insert((slot, gen), (usage.cpu_ticks, now));
                        Sample {
                            slot,
                            gen,
                            rss_bytes: usage.rss_bytes,
                            cpu_percent,
                        }
                    })
                    .collect();
                // Forget trees not measured for a while (replaced or stopped).
                previous.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 600);
                if events.send(Event::Sampled { app, samples }).is_err() {
                    return;
                }
            }
            Job::Trees { pids, reply } => {
                let usage = pids.into_iter().map(|pid| tree.usage(pid)).collect();
                let _ = reply.send(usage);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_proc_read_is_reused_ten_times_as_long() {
        assert_eq!(status_fresh_for(Duration::from_millis(3)), STATUS_FRESH);
        assert_eq!(status_fresh_for(Duration::from_millis(50)), STATUS_FRESH);
        assert_eq!(
            status_fresh_for(Duration::from_millis(130)),
            Duration::from_millis(1300)
        );
    }
}
