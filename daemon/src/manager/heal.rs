//! Healing: every content below its replica count gets new copies, server
//! to server, on servers chosen by the same score as uploads; contents above
//! it (a dead server came back) lose their extra copies.
//!
//! A holder counts while alive or dead for less than `heal_after`, so a
//! short restart causes no copying.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_shared::choice;
use arca_shared::protocol::{Item, ReplicaTarget, items_digest};
use arca_shared::reply::Done;
use arca_shared::sync::LockAnyway;
use arca_shared::ticket::{Ticket, TicketKind};
use arca_shared::types::ServerId;
use arca_shared::{BlobHash, Message};
use tokio::sync::Semaphore;

use super::cmd::verify;
use super::placement::{self, Promise};
use super::{Manager, gc, pacing};
use crate::error::Error;

const EVERY: Duration = Duration::from_secs(1);
/// Copies made at once, so healing does not starve uploads.
const PARALLEL: usize = 2;

pub(crate) async fn run(manager: Arc<Manager>) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let in_flight: Arc<Mutex<HashSet<BlobHash>>> = Arc::default();
    let (manager, slots, in_flight) = (&manager, &slots, &in_flight);
    let heal = || async move {
        match pass(manager, slots, in_flight).await {
            Ok(work_left) => work_left,
            Err(e) => {
                tracing::warn!("healing pass: {e}");
                true
            }
        }
    };
    pacing::run_passes(manager, &manager.heal, EVERY, heal).await;
}

/// One look at every content; true if work is left for the next pass.
async fn pass(
    manager: &Arc<Manager>,
    slots: &Arc<Semaphore>,
    in_flight: &Arc<Mutex<HashSet<BlobHash>>>,
) -> Result<bool, Error> {
    let wanted = manager.config.replicas as usize;
    let mut under = Vec::new();
    for (hash, size, holders) in manager.db(|c| c.referenced()).await? {
        let (live, returning, kept) = {
            let members = manager.members();
            let live: Vec<ServerId> = holders
                .iter()
                .copied()
                .filter(|id| members.is_alive(*id))
                .collect();
            let returning = holders.iter().filter(|id| members.awaited(**id)).count();
            let kept = holders
                .iter()
                .filter(|id| {
                    members
                        .dead_for(**id)
                        .is_none_or(|d| d < manager.config.heal_after)
                })
                .count();
            (live, returning, kept)
        };
        // Just after a restart, copies on servers still registering again
        // are not reported at risk.
        if live.len() + returning < wanted {
            under.push(hash);
        }
        if live.len() > wanted && manager.may_delete() {
            trim(manager, hash).await?;
        } else if kept < wanted && !live.is_empty() {
            let mut busy = in_flight.lock_anyway();
            if busy.contains(&hash) {
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            busy.insert(hash);
            let (manager, in_flight) = (manager.clone(), in_flight.clone());
            manager.clone().tasks.spawn(async move {
                manager.healing.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = copy(&manager, hash, size).await {
                    tracing::warn!(hash = %hash.short(), "healing copy failed: {e}");
                }
                manager.healing.fetch_sub(1, Ordering::Relaxed);
                in_flight.lock_anyway().remove(&hash);
                drop(permit);
            });
        }
    }
    let work_left = !under.is_empty();
    *manager.at_risk.lock_anyway() = under;
    // Every copy to make is below count (live holders are among the kept
    // ones); below count within `heal_after` needs no copy yet, only recounts.
    Ok(work_left)
}

/// Makes one more copy of `hash` from its best live holder.
async fn copy(manager: &Manager, hash: BlobHash, size: u64) -> Result<(), Error> {
    let _guard = manager.hash_locks.lock(hash).await;
    let holders = manager.db(move |c| c.holders(&hash)).await?;
    let weights = manager.config.weights;
    let (source, target, promise) = {
        let mut members = manager.members();
        let sources: Vec<_> = members
            .candidates(&[])
            .into_iter()
            .filter(|c| holders.contains(&c.id))
            .collect();
        let source = choice::rank(&sources, 0, weights).first().map(|s| s.id);
        // In a zone none of the live copies is in, where one is left.
        let target = {
            let ranked = placement::ranked(&members, weights, size, &holders);
            let used = placement::live_zones(&members, holders.iter().copied());
            placement::spread(&ranked, placement::zone_of(&members), &used, 1)
                .first()
                .copied()
        };
        let addr = |id: ServerId| members.get(id).map(|m| m.addr.clone());
        let (Some(source), Some((target, addr))) = (
            source.and_then(addr),
            target.and_then(|t| addr(t).map(|a| (t, a))),
        ) else {
            return Err(Error::Refused(
                "no live holder or no server with room".into(),
            ));
        };
        let promise = Promise::new(manager, &mut members, vec![target], size);
        (source, (target, addr), promise)
    };
    let target_id = target.0;
    replicate(manager, hash, size, &source, target).await?;
    promise.stored();
    tracing::info!(hash = %hash.short(), target = target_id, "healed: copied to another server");
    Ok(())
}

/// Copies `hash` from the server at `source` straight to `target`, and
/// records the new copy once the target has it durably.
pub(crate) async fn replicate(
    manager: &Manager,
    hash: BlobHash,
    size: u64,
    source: &str,
    (target_id, target_addr): (ServerId, String),
) -> Result<(), Error> {
    let ticket = Ticket::issue(
        &manager.config.key,
        TicketKind::Store,
        manager.next_op(),
        target_id,
        items_digest(&[Item { hash, size }]),
        size,
    );
    let mut conn = manager.connect(source).await?;
    conn.set_timeout(Duration::from_secs(120));
    let request = Message::Replicate {
        hash,
        target: ReplicaTarget {
            addr: target_addr,
            ticket,
        },
    };
    let Done = conn.request(&request).await?;
    manager.db(move |c| c.add_holder(&hash, target_id)).await?;
    Ok(())
}

/// Drops live copies beyond the replica count. Each is hashed in place
/// first: damaged ones are set aside, and only intact ones count towards
/// the copies kept, the best-scored; the rest are dropped.
async fn trim(manager: &Manager, hash: BlobHash) -> Result<(), Error> {
    let _guard = manager.hash_locks.lock(hash).await;
    let holders = manager.db(move |c| c.holders(&hash)).await?;
    let ranked: Vec<(ServerId, String)> = {
        let members = manager.members();
        let live: Vec<_> = members
            .candidates(&[])
            .into_iter()
            .filter(|c| holders.contains(&c.id))
            .collect();
        choice::rank(&live, 0, manager.config.weights)
            .iter()
            .filter_map(|s| members.get(s.id).map(|m| (s.id, m.addr.clone())))
            .collect()
    };
    let mut intact = Vec::new();
    for (server, addr) in ranked {
        match verify::check_at(manager, &addr, hash).await {
            Ok(true) => intact.push((server, addr)),
            Ok(false) => gc::set_aside_damaged(manager, hash, server).await?,
            // Not known to be intact, so not counted, but not dropped either.
            Err(e) => tracing::warn!(server, "cannot check a copy before trimming: {e}"),
        }
    }
    for (server, addr) in intact.into_iter().skip(manager.config.replicas as usize) {
        manager.db(move |c| c.remove_holder(&hash, server)).await?;
        gc::delete_blobs(manager, &addr, &[hash]).await?;
        tracing::info!(hash = %hash.short(), server, "dropped an extra copy");
    }
    Ok(())
}
