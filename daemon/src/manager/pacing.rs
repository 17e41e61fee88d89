//! When a background pass over the whole catalog is worth its cost: on news
//! (a removal, a damaged copy), when membership changes, while the last pass
//! left work, and otherwise only now and then. Uploads never need one: they
//! commit only with every copy confirmed.

use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Manager;
use super::membership::Health;

/// Without news, a pass still runs this often, in case something was missed.
const AT_LEAST_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Pacing {
    health: Health,
    last: Option<Instant>,
    /// The last pass left work to do (or failed).
    busy: bool,
}

/// Until shutdown, runs `pass` whenever one is due: looking every `every`,
/// and at once when `news` is notified. A pass says whether it left work
/// (a failed pass should say yes).
pub(crate) async fn run_passes<Pass: Future<Output = bool>>(
    manager: &Manager,
    news: &Notify,
    every: Duration,
    mut pass: impl FnMut() -> Pass,
) {
    let mut pacing = Pacing::default();
    loop {
        let notified = tokio::select! {
            _ = manager.shutdown.cancelled() => return,
            _ = news.notified() => true,
            _ = tokio::time::sleep(every) => false,
        };
        let health = manager.members().health(manager.config.heal_after);
        if pacing.due(notified, health) {
            pacing.busy = pass().await;
        }
    }
}

impl Pacing {
    /// Whether a pass is due now; if so, it counts as started.
    fn due(&mut self, news: bool, health: Health) -> bool {
        let due = news
            || self.busy
            || health != self.health
            || self.last.is_none_or(|at| at.elapsed() >= AT_LEAST_EVERY);
        if due {
            self.health = health;
            self.last = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_cluster_is_left_alone() {
        let mut pacing = Pacing::default();
        assert!(pacing.due(false, Health::default()), "the first pass");
        assert!(!pacing.due(false, Health::default()));
        assert!(pacing.due(true, Health::default()), "news");
        pacing.busy = true;
        assert!(pacing.due(false, Health::default()), "work left");
        pacing.busy = false;
        assert!(!pacing.due(false, Health::default()));
        let changed = Health(vec![(1, false, false)]);
        assert!(pacing.due(false, changed.clone()), "membership changed");
        assert!(!pacing.due(false, changed));
    }
}
