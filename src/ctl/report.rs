//! What a benchmark measured and how it is printed: per-client latency histograms merged into
//! one, error counts by message, and the summary (total time, throughput, p50/p90/p99/p99.9).
//!
//! Pure: no clock or network here (`bench.rs` measures and fills a [`ClientStats`]), so the
//! arithmetic and the output format are unit-tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency tracked, in microseconds (60 s); slower requests count as 60 s.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Significant decimal digits the histogram keeps (0.1% relative error).
const LATENCY_DIGITS: u8 = 3;
/// Distinct error messages listed before the rest are summed as "other".
const ERRORS_LISTED_MAX: usize = 5;

/// What one client (or, after [`ClientStats::merge`], all clients) saw.
#[derive(Debug, Clone)]
pub struct ClientStats {
    /// Latency of each successful request, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failed requests by error message.
    pub errors: BTreeMap<String, u64>,
    /// Txn requests whose compare failed (the key had moved on under another client).
    pub txn_conflicts: u64,
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_DIGITS)
                .expect("static histogram bounds are valid"),
            errors: BTreeMap::new(),
            txn_conflicts: 0,
        }
    }
}

impl ClientStats {
    /// Records one successful request.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us
            .saturating_record(micros.clamp(1, LATENCY_MAX_US));
    }

    /// Records one failed request.
    pub fn record_error(&mut self, message: String) {
        *self.errors.entry(message).or_insert(0) += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ClientStats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms share bounds");
        for (message, count) in &other.errors {
            *self.errors.entry(message.clone()).or_insert(0) += count;
        }
        self.txn_conflicts += other.txn_conflicts;
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.latency_us.len()
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Formats the summary of a run that took `elapsed`. `title` names the workload and shape.
pub fn format_summary(title: &str, stats: &ClientStats, elapsed: Duration, txn: bool) -> String {
    let seconds = elapsed.as_secs_f64();
    let throughput = if seconds > 0.0 {
        stats.ok() as f64 / seconds
    } else {
        0.0
    };
    let ms = |micros: u64| micros as f64 / 1000.0;
    let at = |quantile: f64| ms(stats.latency_us.value_at_quantile(quantile));
    let mut text = format!("{title}\n");
    let _ = writeln!(text, "  total:      {seconds:.3} s");
    let _ = writeln!(
        text,
        "  requests:   {} ok, {} failed",
        stats.ok(),
        stats.failed()
    );
    let _ = writeln!(text, "  throughput: {throughput:.1} req/s");
    if stats.ok() > 0 {
        let _ = writeln!(
            text,
            "  latency:    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms",
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999)
        );
        let _ = writeln!(
            text,
            "              min {:.3} ms  mean {:.3} ms  max {:.3} ms",
            ms(stats.latency_us.min()),
            stats.latency_us.mean() / 1000.0,
            ms(stats.latency_us.max())
        );
    }
    if txn {
        let _ = writeln!(
            text,
            "  txn conflicts (compare failed): {}",
            stats.txn_conflicts
        );
    }
    format_errors(&mut text, &stats.errors);
    text
}

fn format_errors(text: &mut String, errors: &BTreeMap<String, u64>) {
    let mut by_count: Vec<(&String, &u64)> = errors.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    for (message, count) in by_count.iter().take(ERRORS_LISTED_MAX) {
        let _ = writeln!(text, "  error x{count}: {message}");
    }
    let other: u64 = by_count
        .iter()
        .skip(ERRORS_LISTED_MAX)
        .map(|(_, c)| **c)
        .sum();
    if other > 0 {
        let _ = writeln!(text, "  error x{other}: (other messages)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_give_percentiles_and_throughput() {
        let mut a = ClientStats::default();
        let mut b = ClientStats::default();
        for ms in 1..=50 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.record(Duration::from_millis(ms));
        }
        b.record_error("etcdserver: no leader".into());
        a.merge(&b);
        assert_eq!((a.ok(), a.failed()), (100, 1));
        let text = format_summary("bench put", &a, Duration::from_secs(2), false);
        assert!(text.contains("100 ok, 1 failed"), "{text}");
        assert!(text.contains("throughput: 50.0 req/s"), "{text}");
        // hdrhistogram keeps 3 significant digits: 50 ms reads back as 50.015 ms at most.
        assert!(text.contains("p50 50.0"), "{text}");
        assert!(text.contains("p90 90.0"), "{text}");
        assert!(text.contains("error x1: etcdserver: no leader"), "{text}");
    }

    #[test]
    fn slow_requests_saturate_instead_of_failing() {
        let mut stats = ClientStats::default();
        stats.record(Duration::from_secs(3600));
        stats.record(Duration::ZERO);
        assert_eq!(stats.ok(), 2);
        assert!(stats.latency_us.max() >= LATENCY_MAX_US);
    }
}
