//! Memory limits: recording samples and replacing (or stopping) the instances that stay
//! over `max_memory`, a `max_unavailable` batch at a time. Part of [`super::handle`].

use super::effect::{Effect, Level};
use super::event::{Sample, Timer};
use super::policy;
use super::state::{self, AfterStop, Gen, Phase, Reason, Slot};
use super::Cx;

impl Cx<'_> {
    /// Record a measurement; restart (or stop) instances over `max_memory` for
    /// `memory_samples` samples in a row, at most `max_unavailable` of the app at a time,
    /// the largest first.
    pub(super) fn on_sampled(&mut self, app: usize, samples: &[Sample]) {
        let Some(config) = self.state.apps.get(app).map(|a| a.config.memory.clone()) else {
            return;
        };
        for sample in samples {
            let inst = self.inst(sample.slot);
            if !matches!(inst.phase, Phase::Online { gen, .. } if gen == sample.gen) {
                continue;
            }
            inst.usage = Some(state::Usage {
                rss_bytes: sample.rss_bytes,
                cpu_percent: sample.cpu_percent,
            });
            inst.over_limit =
                policy::over_limit(inst.over_limit, sample.rss_bytes, config.max_memory);
        }
        if self.state.shutdown.is_some() {
            return;
        }
        let Some(limit) = config.max_memory else {
            return;
        };
        let budget = self.budget(app);
        let instances = &self.state.apps[app].instances;
        let mut over: Vec<(u64, Slot)> = instances
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                matches!(i.phase, Phase::Online { .. }) && i.over_limit >= config.samples
            })
            .map(|(index, i)| {
                let rss = i.usage.map_or(0, |u| u.rss_bytes);
                (
                    rss,
                    Slot {
                        app,
                        index: index as u32,
                    },
                )
            })
            .collect();
        over.sort_by_key(|&(rss, _)| std::cmp::Reverse(rss));
        for (rss, slot) in over.into_iter().take(budget) {
            let label = self.state.label(slot);
            let samples = self.inst(slot).over_limit;
            self.inst(slot).over_limit = 0;
            let (then, what) = match config.action {
                crate::config::MemoryAction::Restart => {
                    (AfterStop::Restart(Reason::Memory), "restarting it")
                }
                crate::config::MemoryAction::Stop => {
                    self.inst(slot).last_reason = Some(Reason::Memory);
                    (AfterStop::Stop, "stopping it (memory_action = stop)")
                }
            };
            self.log(
                Level::Warn,
                format!(
                    "{label} uses {} MiB, over max_memory {} MiB for {samples} samples in a row; {what}",
                    rss >> 20,
                    limit >> 20
                ),
            );
            self.stop(slot, then);
        }
    }

    /// Time to measure the running instances of an app with a memory limit.
    pub(super) fn on_sample_timer(&mut self, app: usize) {
        if self.state.shutdown.is_some() {
            return;
        }
        // `apply` removed the app or its limit: the timer chain ends here.
        let a = &self.state.apps[app];
        if a.removed || a.config.memory.max_memory.is_none() {
            self.state.apps[app].sampling = false;
            return;
        }
        let targets: Vec<(Slot, Gen, i32)> = self.state.apps[app]
            .instances
            .iter()
            .enumerate()
            .filter_map(|(index, inst)| match inst.phase {
                Phase::Online { pid, gen, .. } => Some((
                    Slot {
                        app,
                        index: index as u32,
                    },
                    gen,
                    pid,
                )),
                _ => None,
            })
            .collect();
        if !targets.is_empty() {
            self.fx.push(Effect::Sample { app, targets });
        }
        let at = self.now + self.state.apps[app].config.memory.interval;
        self.timer(at, Timer::Sample { app });
    }
}
