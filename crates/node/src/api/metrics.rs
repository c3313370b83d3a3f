//! Prometheus text rendering and the API's own request metrics (count and latency by route,
//! method and status).
//!
//! It deliberately does not collect Raft or WAL numbers: the backend appends those through
//! [`PromText`] when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus text-format (0.0.4) document under construction.
#[derive(Debug, Default)]
pub struct PromText {
    text: String,
}

impl PromText {
    /// Writes `# HELP` and `# TYPE` for a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// Writes one sample; `labels` are `(name, value)` pairs, values escaped here.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                // Writing into a String cannot fail.
                let _ = write!(self.text, "{label}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, " {value}");
    }

    /// A whole single-sample gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// Writes a histogram series from cumulative bucket counts (`buckets[i]` counts samples
    /// ≤ `bounds[i]`), the total count and the sum. The family header must be written first.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        cumulative: &[u64],
        count: u64,
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        for (bound, total) in bounds.iter().zip(cumulative) {
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, *total as f64);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.text
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Default)]
struct Series {
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    count: u64,
    sum_seconds: f64,
}

/// Request counts and latencies by (route template, method, status).
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: Mutex<BTreeMap<SeriesKey, Series>>,
}

impl RequestMetrics {
    /// Records one finished request. `route` is the matched template (`/v1/jobs/{id}`), never
    /// the raw path, so cardinality stays bounded.
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let key = SeriesKey {
            route: route.to_owned(),
            method: method.to_owned(),
            status,
        };
        let seconds = elapsed.as_secs_f64();
        let Ok(mut series) = self.series.lock() else {
            // A poisoned lock means another request panicked mid-update; metrics are
            // best-effort and must never take the API down with them.
            return;
        };
        let entry = series.entry(key).or_default();
        for (bucket, bound) in entry.buckets.iter_mut().zip(LATENCY_BUCKETS_SECONDS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        entry.count += 1;
        entry.sum_seconds += seconds;
    }

    /// Appends `steward_api_requests_total` and `steward_api_request_duration_seconds`.
    pub fn render(&self, out: &mut PromText) {
        let Ok(series) = self.series.lock() else {
            return;
        };
        out.family(
            "steward_api_requests_total",
            "counter",
            "HTTP API requests by route template, method and status.",
        );
        for (key, value) in series.iter() {
            let status = key.status.to_string();
            let labels = [
                ("route", key.route.as_str()),
                ("method", key.method.as_str()),
                ("status", status.as_str()),
            ];
            out.sample("steward_api_requests_total", &labels, value.count as f64);
        }
        out.family(
            "steward_api_request_duration_seconds",
            "histogram",
            "HTTP API request latency by route template, method and status.",
        );
        for (key, value) in series.iter() {
            let status = key.status.to_string();
            let labels = [
                ("route", key.route.as_str()),
                ("method", key.method.as_str()),
                ("status", status.as_str()),
            ];
            out.histogram(
                "steward_api_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS_SECONDS,
                &value.buckets,
                value.count,
                value.sum_seconds,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = RequestMetrics::default();
        metrics.record("/v1/jobs", "POST", 201, Duration::from_millis(3));
        metrics.record("/v1/jobs", "POST", 201, Duration::from_millis(30));
        let mut out = PromText::default();
        metrics.render(&mut out);
        let text = out.finish();
        assert!(text.contains(
            "steward_api_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"201\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
    }
}
