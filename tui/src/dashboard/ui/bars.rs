//! Text bars and sparklines: plain strings, so rows stay one `Line` and
//! snapshots stay readable.

/// A bar of `width` cells filled to `ratio` (clamped to 0..=1).
pub fn bar(ratio: f64, width: usize) -> String {
    let filled = (ratio.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled), "▁".repeat(width - filled))
}

/// A gauge: a bar between thin edges.
pub fn gauge(ratio: f64, width: usize) -> String {
    format!("▕{}▏", bar(ratio, width))
}

/// Where a latency sits on a fixed scale, 0.05 ms to 50 ms, evenly in its
/// logarithm: a tenth of a millisecond between two fast servers is a sliver,
/// not the whole bar.
pub fn latency_ratio(ms: f64) -> f64 {
    const LOW: f64 = 0.05;
    const HIGH: f64 = 50.0;
    (ms.max(LOW) / LOW).ln() / (HIGH / LOW).ln()
}

/// `done` of `total` as a whole percentage, never over 100.
pub fn percent(done: u64, total: u64) -> u64 {
    (done.min(total) * 100).checked_div(total).unwrap_or(100)
}

/// The last `width` values as block characters scaled to their maximum.
pub fn sparkline(values: &[f64], width: usize) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let recent = &values[values.len().saturating_sub(width)..];
    let max = recent.iter().copied().fold(0.0, f64::max);
    let line: String = recent
        .iter()
        .map(|v| {
            let level = if max > 0.0 {
                (v / max * 7.0).round() as usize
            } else {
                0
            };
            LEVELS[level.min(7)]
        })
        .collect();
    format!("{line:▁>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_bounded() {
        assert_eq!(bar(0.0, 4), "▁▁▁▁");
        assert_eq!(bar(0.5, 4), "██▁▁");
        assert_eq!(bar(7.0, 4), "████");
        assert_eq!(bar(-1.0, 4), "▁▁▁▁");
        assert_eq!(percent(150, 100), 100);
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(1, 3), 33);
    }

    #[test]
    fn latency_is_on_a_fixed_scale() {
        assert_eq!(latency_ratio(0.0), 0.0);
        assert!((latency_ratio(50.0) - 1.0).abs() < 1e-9);
        let near = latency_ratio(0.4) - latency_ratio(0.3);
        assert!(near > 0.0 && near < 0.05, "{near}");
    }

    #[test]
    fn sparklines_scale_and_pad() {
        assert_eq!(sparkline(&[1.0, 2.0], 4), "▁▁▅█");
        assert_eq!(sparkline(&[0.0; 6], 4), "▁▁▁▁");
    }
}
