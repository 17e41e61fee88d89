//! Server choice: which live servers take a file, best first.
//!
//! Latency and load are each min-max normalised over the candidates to
//! `[0, 1]` (0 where all are equal), then weighted; lower scores win, ties
//! go to the less loaded and then to the lower server id. Unlike the original system's formula this is a
//! true normalisation: no unbounded negatives, no flat bonus for empty servers.
//!
//! Min-max stretches any spread to the whole of `[0, 1]`, so latencies
//! within the measurement's own noise of the fastest count as the fastest:
//! on a quiet network jitter alone would otherwise decide every placement.

use serde::{Deserialize, Serialize};

/// What the manager knows of one live server when it chooses.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: u64,
    /// Smoothed round trip measured by the manager.
    pub latency_ms: f64,
    /// How much single round trips to it scatter (their standard deviation).
    pub latency_noise_ms: f64,
    /// Bytes stored and promised, divided by capacity (or bytes when
    /// capacity is unknown).
    pub load: f64,
    /// Bytes the server can still take.
    pub free_bytes: u64,
}

/// How much latency and load count; they need not sum to one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub latency: f64,
    pub load: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            latency: 0.5,
            load: 0.5,
        }
    }
}

/// One candidate's score; lower is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub id: u64,
    pub score: f64,
}

/// Scores every candidate (room ignored), for display.
pub fn score_all(candidates: &[Candidate], weights: Weights) -> Vec<Scored> {
    let fastest = candidates
        .iter()
        .map(|c| c.latency_ms)
        .fold(f64::INFINITY, f64::min);
    // Twice the typical scatter: what two equal servers can differ by.
    let noise = 2.0 * median(candidates.iter().map(|c| c.latency_noise_ms));
    let slower = |c: &Candidate| (c.latency_ms - fastest - noise).max(0.0);
    let latency = Range::over(candidates.iter().map(slower));
    let load = Range::over(candidates.iter().map(|c| c.load));
    candidates
        .iter()
        .map(|c| Scored {
            id: c.id,
            score: weights.latency * latency.normalise(slower(c))
                + weights.load * load.normalise(c.load),
        })
        .collect()
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Ranks the candidates that have room for `size` bytes, best first.
/// Normalisation runs over those candidates only.
pub fn rank(candidates: &[Candidate], size: u64, weights: Weights) -> Vec<Scored> {
    let roomy: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.free_bytes >= size)
        .cloned()
        .collect();
    let mut scored: Vec<(Scored, f64)> = score_all(&roomy, weights)
        .into_iter()
        .zip(roomy.iter().map(|c| c.load))
        .collect();
    // The slowest empty server and the fastest full one tie at the weights'
    // midpoint: the one with room to spare should win, not the lower id.
    scored.sort_by(|(a, a_load), (b, b_load)| {
        a.score
            .total_cmp(&b.score)
            .then(a_load.total_cmp(b_load))
            .then(a.id.cmp(&b.id))
    });
    scored.into_iter().map(|(s, _)| s).collect()
}

struct Range {
    min: f64,
    max: f64,
}

impl Range {
    fn over(values: impl Iterator<Item = f64>) -> Self {
        values.fold(
            Range {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
            |r, v| Range {
                min: r.min.min(v),
                max: r.max.max(v),
            },
        )
    }

    fn normalise(&self, value: f64) -> f64 {
        let span = self.max - self.min;
        if span > 0.0 && span.is_finite() {
            (value - self.min) / span
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, latency_ms: f64, load: f64) -> Candidate {
        Candidate {
            id,
            latency_ms,
            latency_noise_ms: 0.0,
            load,
            free_bytes: u64::MAX,
        }
    }

    fn ids(ranked: &[Scored]) -> Vec<u64> {
        ranked.iter().map(|s| s.id).collect()
    }

    #[test]
    fn all_equal_scores_zero_and_ties_go_to_lower_id() {
        let ranked = rank(
            &[c(3, 1.0, 0.2), c(1, 1.0, 0.2), c(2, 1.0, 0.2)],
            0,
            Weights::default(),
        );
        assert_eq!(ids(&ranked), [1, 2, 3]);
        assert!(ranked.iter().all(|s| s.score == 0.0));
    }

    /// What decided a flaky placement test on a busy machine: one empty
    /// server measured slowest, two loaded ones fastest.
    #[test]
    fn equal_scores_go_to_the_less_loaded() {
        let ranked = rank(
            &[
                c(1, 1.0, 0.25),
                c(2, 1.0, 0.0),
                c(3, 1.0, 0.25),
                c(4, 3.0, 0.0),
            ],
            0,
            Weights::default(),
        );
        assert_eq!(ids(&ranked), [2, 4, 1, 3]);
    }

    #[test]
    fn one_candidate_scores_zero() {
        let ranked = rank(&[c(7, 9.0, 0.9)], 0, Weights::default());
        assert_eq!(ranked, [Scored { id: 7, score: 0.0 }]);
    }

    #[test]
    fn no_candidates_gives_nothing() {
        assert!(rank(&[], 1, Weights::default()).is_empty());
    }

    #[test]
    fn servers_without_room_are_excluded_and_not_normalised_over() {
        let mut full = c(1, 0.0, 0.0);
        full.free_bytes = 10;
        let ranked = rank(
            &[full, c(2, 1.0, 0.5), c(3, 2.0, 0.5)],
            11,
            Weights::default(),
        );
        assert_eq!(ids(&ranked), [2, 3]);
        assert_eq!(ranked[0].score, 0.0);
        assert_eq!(ranked[1].score, 0.5);
    }

    #[test]
    fn scores_are_bounded_and_balanced() {
        let ranked = rank(
            &[c(1, 1.0, 1.0), c(2, 3.0, 0.0), c(3, 2.0, 0.5)],
            0,
            Weights::default(),
        );
        for s in &ranked {
            assert!((0.0..=1.0).contains(&s.score));
            assert!((s.score - 0.5).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(ids(&ranked), [2, 3, 1]);
    }

    #[test]
    fn latency_only_and_load_only_weights() {
        let servers = [c(1, 5.0, 0.0), c(2, 1.0, 0.9), c(3, 3.0, 0.5)];
        let latency_only = Weights {
            latency: 1.0,
            load: 0.0,
        };
        let load_only = Weights {
            latency: 0.0,
            load: 1.0,
        };
        assert_eq!(ids(&rank(&servers, 0, latency_only)), [2, 3, 1]);
        assert_eq!(ids(&rank(&servers, 0, load_only)), [1, 3, 2]);
    }

    #[test]
    fn slow_or_loaded_servers_rank_last() {
        let servers = [
            c(1, 50.0, 0.1),
            c(2, 1.0, 0.1),
            c(3, 1.0, 0.1),
            c(4, 1.2, 0.1),
        ];
        assert_eq!(
            rank(&servers, 0, Weights::default()).last().map(|s| s.id),
            Some(1)
        );
        let servers = [c(1, 1.0, 0.9), c(2, 1.0, 0.1), c(3, 1.0, 0.1)];
        assert_eq!(
            rank(&servers, 0, Weights::default()).last().map(|s| s.id),
            Some(1)
        );
    }

    #[test]
    fn latency_within_its_noise_does_not_decide() {
        let noisy = |id, latency_ms, load| Candidate {
            latency_noise_ms: 0.1,
            ..c(id, latency_ms, load)
        };
        // 0.15 ms apart with 0.1 ms of scatter: load decides.
        let servers = [noisy(1, 0.2, 0.5), noisy(2, 0.35, 0.1)];
        assert_eq!(ids(&rank(&servers, 0, Weights::default())), [2, 1]);
        // Far beyond the noise, latency counts again, only by its excess.
        let servers = [noisy(1, 0.2, 0.5), noisy(2, 5.0, 0.1), noisy(3, 0.3, 0.3)];
        let scored = score_all(&servers, Weights::default());
        let expected = [0.5, 0.5, 0.25];
        for (s, e) in scored.iter().zip(expected) {
            assert!((s.score - e).abs() < 1e-9, "{scored:?}");
        }
        assert_eq!(ids(&rank(&servers, 0, Weights::default())), [3, 2, 1]);
    }
}
