//! Readiness and liveness: when an instance counts as ready, what a failed probe does,
//! and what an sd_notify message changes. Part of [`super::handle`]; time is an argument.

use super::event::{ProbeKind, Timer};
use super::state::{AfterStop, Gen, Notice, Phase, Reason, Slot};
use super::{Cx, Effect, Level};
use crate::human;

impl Cx<'_> {
    /// Generation `gen` was just spawned: arm its ready deadline and first probe, or, for
    /// an app without `ready`, its health probe.
    pub(super) fn began(&mut self, slot: Slot, gen: Gen) {
        let app = &self.state.apps[slot.app].config;
        match &app.ready {
            Some(ready) => {
                let (deadline, polled) = (self.now + ready.timeout, ready.check.is_polled());
                self.timer(deadline, Timer::ReadyDeadline { slot, gen });
                if polled {
                    let kind = ProbeKind::Ready;
                    self.fx.push(Effect::Probe { slot, gen, kind });
                }
            }
            None => self.arm_health(slot, gen),
        }
    }

    /// Schedule the next health probe of a ready generation, if the app has one.
    pub(super) fn arm_health(&mut self, slot: Slot, gen: Gen) {
        if let Some(health) = &self.state.apps[slot.app].config.health {
            let at = self.now + health.interval;
            let kind = ProbeKind::Health;
            self.timer(at, Timer::Probe { slot, gen, kind });
        }
    }

    /// Whether `gen` is the slot's current process, and whether it is ready.
    fn online(&self, slot: Slot, gen: Gen) -> Option<bool> {
        match self.state.instance(slot)?.phase {
            Phase::Online { gen: g, ready, .. } if g == gen => Some(ready),
            _ => None,
        }
    }

    fn mark_ready(&mut self, slot: Slot, gen: Gen, how: &str) {
        let now = self.now;
        let Phase::Online {
            ready: ref mut ready @ false,
            since,
            ..
        } = self.inst(slot).phase
        else {
            return;
        };
        *ready = true;
        let label = self.state.label(slot);
        let after = human::duration(now.saturating_sub(since));
        self.log(
            Level::Info,
            format!("{label} is ready after {after} ({how})"),
        );
        self.arm_health(slot, gen);
        self.became_ready(slot);
    }

    pub(super) fn on_probe_timer(&mut self, slot: Slot, gen: Gen, kind: ProbeKind) {
        if self.state.shutdown.is_some() {
            return;
        }
        let wanted = matches!(
            (kind, self.online(slot, gen)),
            (ProbeKind::Ready, Some(false)) | (ProbeKind::Health, Some(true))
        );
        if wanted {
            self.fx.push(Effect::Probe { slot, gen, kind });
        }
    }

    /// A probe's result. The next probe is armed only now, so a slow probe never overlaps
    /// the next one.
    pub(super) fn on_probe_done(
        &mut self,
        slot: Slot,
        gen: Gen,
        kind: ProbeKind,
        ok: bool,
        detail: String,
    ) {
        let Some(ready) = self.online(slot, gen) else {
            return;
        };
        if self.state.shutdown.is_some() {
            return;
        }
        // Only what is needed, copied: this runs for every probe result.
        let config = &self.state.apps[slot.app].config;
        let polled = config
            .ready
            .as_ref()
            .map(|r| (r.check.kind(), r.check.is_polled(), r.interval));
        let threshold = config.health.as_ref().map(|h| h.failures);
        match (kind, polled, threshold) {
            (ProbeKind::Ready, Some((what, polled, interval)), _) if !ready => {
                if ok {
                    self.mark_ready(slot, gen, &format!("{what} check: {detail}"));
                } else if polled {
                    let at = self.now + interval;
                    self.timer(at, Timer::Probe { slot, gen, kind });
                }
            }
            (ProbeKind::Health, _, Some(threshold)) if ready => {
                let before = self.inst(slot).probe_failures;
                if ok {
                    self.inst(slot).probe_failures = 0;
                    if before > 0 {
                        let label = self.state.label(slot);
                        self.log(Level::Info, format!("{label} health probe passes again"));
                    }
                    self.arm_health(slot, gen);
                    return;
                }
                let failed = before + 1;
                let label = self.state.label(slot);
                if failed >= threshold {
                    self.log(
                        Level::Warn,
                        format!(
                            "{label} health probe failed {failed} times in a row ({detail}); restarting it"
                        ),
                    );
                    self.inst(slot).probe_failures = 0;
                    self.stop(slot, AfterStop::Restart(Reason::Probe));
                } else {
                    self.inst(slot).probe_failures = failed;
                    self.log(
                        Level::Warn,
                        format!(
                            "{label} health probe failed ({detail}); {failed} of {threshold} in a row"
                        ),
                    );
                    self.arm_health(slot, gen);
                }
            }
            _ => {}
        }
    }

    /// Not ready within `ready.timeout`: stop it; the policy counts it as a failed start.
    pub(super) fn on_ready_deadline(&mut self, slot: Slot, gen: Gen) {
        if self.online(slot, gen) != Some(false) || self.state.shutdown.is_some() {
            return;
        }
        let Phase::Online { since, .. } = self.inst(slot).phase else {
            return;
        };
        let uptime = self.now.saturating_sub(since);
        let label = self.state.label(slot);
        let (what, timeout) = match &self.state.apps[slot.app].config.ready {
            Some(r) => (r.check.kind(), human::duration(r.timeout)),
            None => return,
        };
        if self.inst(slot).rolling.is_some() {
            self.fail_rollout(slot, &format!("not ready within {timeout} ({what} check)"));
            self.stop(slot, AfterStop::Restore);
            return;
        }
        self.log(
            Level::Warn,
            format!(
                "{label} not ready within {timeout} ({what} check); stopping it as a failed start"
            ),
        );
        self.stop(slot, AfterStop::NotReady { uptime });
    }

    /// An sd_notify datagram from the current process (or one of its descendants).
    pub(super) fn on_notified(&mut self, slot: Slot, gen: Gen, notice: Notice) {
        if self.online(slot, gen).is_none() {
            return;
        }
        let notify_gates = matches!(
            self.state.apps[slot.app].config.ready_check(),
            Some(crate::config::Check::Notify)
        );
        let inst = self.inst(slot);
        if let Some(status) = &notice.status {
            inst.notice.status = Some(status.clone());
        }
        if let Some(pid) = notice.main_pid {
            inst.notice.main_pid = Some(pid);
        }
        if notice.stopping {
            inst.notice.stopping = true;
        }
        if notice.ready && notify_gates {
            self.mark_ready(slot, gen, "notify check: READY=1");
        }
    }
}
