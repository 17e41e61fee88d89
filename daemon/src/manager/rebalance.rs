//! Rebalancing: when live servers with room hold very different amounts
//! (the fullest over 1.5x the mean, or one under the mean / 1.5, as after
//! a fresh server joins), copies move from the fullest to the emptiest in
//! the background, a budget of bytes per pass. A move copies first,
//! records the new copy, and only then drops the old one, so no content
//! ever has fewer copies than its count; a move never takes a content's
//! copies into fewer zones. Healing comes first: nothing moves while a
//! content is below its count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arca_shared::BlobHash;
use arca_shared::sync::LockAnyway;
use arca_shared::types::ServerId;

use super::membership::Members;
use super::placement::{self, Promise};
use super::{Manager, gc, heal, pacing};
use crate::error::Error;

const EVERY: Duration = Duration::from_secs(1);
/// Bytes moved per pass at most: moves must not crowd out backups.
const BUDGET: u64 = 64 << 20;
/// Candidates read from the catalog at once.
const BATCH: usize = 256;
/// How uneven is too uneven, against the mean.
const SPREAD: f64 = 1.5;

pub(crate) async fn run(manager: Arc<Manager>) {
    let manager = &manager;
    let rebalance = || async move {
        match pass(manager).await {
            Ok(work_left) => work_left,
            Err(e) => {
                tracing::warn!("rebalancing pass: {e}");
                true
            }
        }
    };
    pacing::run_passes(manager, &manager.rebalance, EVERY, rebalance).await;
}

/// Moves copies until the load is even or the budget is spent; true if
/// work is left for the next pass.
async fn pass(manager: &Manager) -> Result<bool, Error> {
    let mut budget = BUDGET;
    loop {
        if !manager.may_delete() || !manager.at_risk.lock_anyway().is_empty() {
            return Ok(true);
        }
        let plan = uneven(&loads(&manager.members()));
        let Some(plan) = plan else {
            return Ok(false);
        };
        let (from, to) = (plan.from, plan.to);
        let batch = manager.db(move |c| c.movable(from, to, BATCH)).await?;
        let mut moved = false;
        for (hash, size, holders) in batch {
            // One look at the members per candidate, the lock let go
            // before the move.
            let (now, keeps_zones) = {
                let members = manager.members();
                let now = uneven(&loads(&members));
                (now, keeps_zones(&members, &holders, from, to))
            };
            match now {
                // Only moves that narrow the gap, or two servers would
                // trade the same chunk back and forth.
                Some(now) if (now.from, now.to) == (from, to) => {
                    if size.saturating_mul(2) > now.gap || !keeps_zones {
                        continue;
                    }
                }
                _ => break,
            }
            move_copy(manager, hash, size, from, to).await?;
            moved = true;
            budget = budget.saturating_sub(size);
            if budget == 0 {
                return Ok(true);
            }
        }
        if !moved {
            return Ok(false);
        }
    }
}

/// The servers to move from and to, and how far apart they are.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    from: ServerId,
    to: ServerId,
    gap: u64,
}

/// Each live server with room and the bytes it holds or is about to.
fn loads(members: &Members) -> Vec<(ServerId, u64)> {
    members
        .alive_members()
        .filter(|(_, m)| !m.stats.read_only && m.stats.free_bytes > 0)
        .map(|(id, m)| (id, m.expected_bytes()))
        .collect()
}

/// From the fullest to the emptiest, if the spread is too uneven.
fn uneven(loads: &[(ServerId, u64)]) -> Option<Plan> {
    if loads.len() < 2 {
        return None;
    }
    let mean = loads.iter().map(|(_, b)| *b as f64).sum::<f64>() / loads.len() as f64;
    // Ties go to the lower id, as in placement.
    let fullest = loads
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let emptiest = loads
        .iter()
        .min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))?;
    let too_full = fullest.1 as f64 > SPREAD * mean;
    let too_empty = (emptiest.1 as f64) * SPREAD < mean;
    (too_full || too_empty).then(|| Plan {
        from: fullest.0,
        to: emptiest.0,
        gap: fullest.1 - emptiest.1,
    })
}

/// Whether moving a copy from `from` to `to` keeps its copies in as many
/// distinct zones as before.
fn keeps_zones(members: &Members, holders: &[ServerId], from: ServerId, to: ServerId) -> bool {
    let before = placement::live_zones(members, holders.iter().copied());
    let after = holders.iter().copied().filter(|id| *id != from).chain([to]);
    placement::live_zones(members, after).len() >= before.len()
}

/// Moves one copy of `hash`: copied to `to` and recorded there, then
/// dropped from `from`. Interrupted in between, the content has a copy too
/// many, which healing trims; before, the target's copy is an orphan.
async fn move_copy(
    manager: &Manager,
    hash: BlobHash,
    size: u64,
    from: ServerId,
    to: ServerId,
) -> Result<(), Error> {
    let _guard = manager.hash_locks.lock(hash).await;
    let holders = manager.db(move |c| c.holders(&hash)).await?;
    if !holders.contains(&from) || holders.contains(&to) {
        return Ok(());
    }
    let (source, target, promise) = {
        let mut members = manager.members();
        let addr = |id: ServerId| members.get(id).map(|m| m.addr.clone());
        let (Some(source), Some(target)) = (addr(from), addr(to)) else {
            return Ok(());
        };
        let promise = Promise::new(manager, &mut members, vec![to], size);
        (source, target, promise)
    };
    manager.moving.fetch_add(1, Ordering::Relaxed);
    let moved = async {
        heal::replicate(manager, hash, size, &source, (to, target)).await?;
        promise.stored();
        if !manager.may_delete() {
            return Ok(());
        }
        manager.db(move |c| c.remove_holder(&hash, from)).await?;
        manager.members().dropped(from, size);
        gc::delete_blobs(manager, &source, &[hash]).await
    }
    .await;
    manager.moving.fetch_sub(1, Ordering::Relaxed);
    moved?;
    tracing::debug!(hash = %hash.short(), from, to, "moved a copy to even the load");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn an_even_cluster_is_left_alone() {
        assert_eq!(uneven(&[]), None);
        assert_eq!(uneven(&[(1, 100 * MIB)]), None);
        assert_eq!(
            uneven(&[(1, 100 * MIB), (2, 90 * MIB), (3, 110 * MIB)]),
            None
        );
    }

    #[test]
    fn a_fresh_server_takes_from_the_fullest() {
        let loads = [(1, 100 * MIB), (2, 120 * MIB), (3, 100 * MIB), (4, 0)];
        assert_eq!(
            uneven(&loads),
            Some(Plan {
                from: 2,
                to: 4,
                gap: 120 * MIB
            })
        );
    }

    #[test]
    fn one_server_far_over_the_mean_gives_to_the_emptiest() {
        let loads = [(1, 50 * MIB), (2, 300 * MIB), (3, 60 * MIB), (4, 70 * MIB)];
        assert_eq!(uneven(&loads).map(|p| (p.from, p.to)), Some((2, 1)));
    }
}
