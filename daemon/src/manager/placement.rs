//! Where data goes: the servers an upload, a healing copy or a move is
//! placed on. Servers are ranked by the shared score (latency and load);
//! copies of the same data then go to distinct failure zones while zones
//! not yet used remain, best-ranked first.
//!
//! Bytes placed on a server count in its load from the moment they are
//! placed (a [`Promise`]) until they are recorded or fail, so a burst of
//! uploads that all ask before any lands spreads over the cluster instead
//! of all choosing the same emptiest servers.

use arca_shared::choice::{self, Weights};
use arca_shared::types::ServerId;

use super::Manager;
use super::membership::Members;

/// A chosen server: its id and address.
pub type Pick = (ServerId, String);

/// Of `ranked` (best first), `count` servers: first the best of each zone
/// not in `used` (zones of copies that already exist), then the best of
/// the rest. Servers without a zone share one.
pub fn spread<'a>(
    ranked: &[ServerId],
    zone_of: impl Fn(ServerId) -> Option<&'a str>,
    used: &[Option<&'a str>],
    count: usize,
) -> Vec<ServerId> {
    let mut zones: Vec<Option<&str>> = used.to_vec();
    let mut chosen: Vec<ServerId> = Vec::with_capacity(count);
    for &id in ranked {
        if chosen.len() == count {
            return chosen;
        }
        let zone = zone_of(id);
        if !zones.contains(&zone) {
            zones.push(zone);
            chosen.push(id);
        }
    }
    for &id in ranked {
        if chosen.len() == count {
            break;
        }
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    chosen
}

/// The live servers fit for new data with room for `size` bytes, best
/// first, minus `exclude`.
pub fn ranked(
    members: &Members,
    weights: Weights,
    size: u64,
    exclude: &[ServerId],
) -> Vec<ServerId> {
    choice::rank(&members.upload_candidates(exclude), size, weights)
        .iter()
        .map(|s| s.id)
        .collect()
}

/// The zone of a server, as the membership knows it.
pub fn zone_of<'a>(members: &'a Members) -> impl Fn(ServerId) -> Option<&'a str> + 'a {
    |id| members.get(id).and_then(|m| m.zone.as_deref())
}

/// The distinct zones of those of `holders` that are alive.
pub fn live_zones(
    members: &Members,
    holders: impl IntoIterator<Item = ServerId>,
) -> Vec<Option<&str>> {
    let zone_of = zone_of(members);
    let mut zones: Vec<Option<&str>> = holders
        .into_iter()
        .filter(|id| members.is_alive(*id))
        .map(zone_of)
        .collect();
    zones.sort_unstable();
    zones.dedup();
    zones
}

/// Bytes placed on servers and not yet settled. Dropped unsettled (the
/// upload failed, timed out or its task ended), it counts them as not
/// coming.
pub struct Promise<'a> {
    manager: &'a Manager,
    servers: Vec<ServerId>,
    bytes: u64,
    stored: bool,
}

impl<'a> Promise<'a> {
    /// Promises `bytes` to each of `servers`; `members` is the locked
    /// membership the choice was made on, so no other choice comes between.
    pub fn new(
        manager: &'a Manager,
        members: &mut Members,
        servers: Vec<ServerId>,
        bytes: u64,
    ) -> Self {
        members.promise(&servers, bytes);
        Self {
            manager,
            servers,
            bytes,
            stored: false,
        }
    }

    /// The bytes are recorded as stored on every server promised.
    pub fn stored(mut self) {
        self.stored = true;
    }
}

impl Drop for Promise<'_> {
    fn drop(&mut self) {
        self.manager
            .members()
            .settle(&self.servers, self.bytes, self.stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones<'a>(of: &'a [(ServerId, &'a str)]) -> impl Fn(ServerId) -> Option<&'a str> {
        |id| of.iter().find(|(s, _)| *s == id).map(|(_, z)| *z)
    }

    /// Many uploads placed at once, none landed yet: each sees the bytes
    /// promised to the ones before.
    #[test]
    fn a_burst_of_placements_spreads_over_every_server() {
        let mut members = Members::new(std::time::Duration::from_secs(60));
        let stats = arca_shared::protocol::ServerStats {
            capacity_bytes: 1 << 40,
            free_bytes: 1 << 40,
            ..Default::default()
        };
        for id in 1..=64 {
            members.heartbeat(id, &format!("s{id}"), None, stats);
            // Loopback jitter: a little different for every server.
            for sample in [0.10, 0.30, 0.20, 0.15] {
                members.record_latency(id, sample + id as f64 / 1000.0);
            }
        }
        let mut copies = std::collections::HashMap::<ServerId, usize>::new();
        for _ in 0..64 {
            let ranked = ranked(&members, Weights::default(), 4 << 20, &[]);
            let chosen = spread(&ranked, zone_of(&members), &[], 2);
            members.promise(&chosen, 4 << 20);
            for id in chosen {
                *copies.entry(id).or_default() += 1;
            }
        }
        assert_eq!(copies.len(), 64, "every server takes copies: {copies:?}");
        assert!(copies.values().all(|&n| n == 2), "{copies:?}");
    }

    #[test]
    fn copies_go_to_distinct_zones_best_first() {
        let of = [(1, "a"), (2, "a"), (3, "b"), (4, "b")];
        assert_eq!(spread(&[1, 2, 3, 4], zones(&of), &[], 2), [1, 3]);
        assert_eq!(spread(&[2, 1, 4, 3], zones(&of), &[], 2), [2, 4]);
    }

    #[test]
    fn zones_of_existing_copies_are_avoided() {
        let of = [(1, "a"), (2, "a"), (3, "b")];
        assert_eq!(spread(&[1, 2, 3], zones(&of), &[Some("b")], 1), [1]);
        assert_eq!(spread(&[1, 2, 3], zones(&of), &[Some("a")], 1), [3]);
    }

    #[test]
    fn too_few_zones_fill_up_with_the_best_of_the_rest() {
        let of = [(1, "a"), (2, "a"), (3, "a")];
        assert_eq!(spread(&[3, 1, 2], zones(&of), &[], 2), [3, 1]);
        let none = |_| None;
        assert_eq!(spread(&[3, 1, 2], none, &[], 2), [3, 1]);
        assert_eq!(spread(&[3], none, &[], 2), [3]);
    }
}
