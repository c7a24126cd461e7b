//! Prometheus metrics in the text exposition format (version 0.0.4),
//! written by hand: a few counters and one histogram do not need a crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::limits::ErrorKind;

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latency of one route: per-bucket counts (not cumulative), sum, count.
#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    /// (route, status) → requests answered.
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    errors: [u64; ErrorKind::ALL.len()],
    /// Check calls on the engine, and the images they held.
    batches: u64,
    batch_images: u64,
}

/// The server's counters; cheap to update from every request.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Gauges read when the metrics are rendered.
pub struct Gauges {
    /// Check requests admitted now (running or waiting for a worker).
    pub in_flight: usize,
    /// The served index's generation.
    pub generation: u64,
    /// Searchable images in the served index.
    pub images: usize,
    /// A compact index's training files that could not be read back to
    /// verify a candidate (gone or changed since indexing).
    pub unverifiable: usize,
}

impl Metrics {
    /// Counts one answered request: its route (the matched pattern, so
    /// paths cannot blow up the label set), status, latency and error kind.
    pub fn record(&self, route: &str, status: u16, took: Duration, error: Option<ErrorKind>) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((route.to_string(), status)).or_default() += 1;
        let h = m.latency.entry(route.to_string()).or_default();
        let s = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            h.buckets[i] += 1;
        }
        h.sum += s;
        h.count += 1;
        if let Some(k) = error {
            let i = ErrorKind::ALL.iter().position(|&x| x == k).unwrap_or(0);
            m.errors[i] += 1;
        }
    }

    /// Counts one check call on the engine holding `images` images (one
    /// request's, or a batch of requests').
    pub fn record_batch(&self, images: usize) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.batches += 1;
        m.batch_images += images as u64;
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let w = &mut out;
        // Writing to a String cannot fail.
        let _ = writeln!(
            w,
            "# HELP lookalike_http_requests_total HTTP requests answered, by route and status."
        );
        let _ = writeln!(w, "# TYPE lookalike_http_requests_total counter");
        for ((route, status), n) in &m.requests {
            let _ = writeln!(
                w,
                "lookalike_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ = writeln!(
            w,
            "# HELP lookalike_http_request_duration_seconds Time from request to answer, by route."
        );
        let _ = writeln!(
            w,
            "# TYPE lookalike_http_request_duration_seconds histogram"
        );
        for (route, h) in &m.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    w,
                    "lookalike_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                w,
                "lookalike_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                w,
                "lookalike_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                w,
                "lookalike_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            w,
            "# HELP lookalike_http_errors_total Refused or failed requests, by kind."
        );
        let _ = writeln!(w, "# TYPE lookalike_http_errors_total counter");
        for (k, n) in ErrorKind::ALL.iter().zip(m.errors) {
            let _ = writeln!(
                w,
                "lookalike_http_errors_total{{kind=\"{}\"}} {n}",
                k.label()
            );
        }
        let counters = [
            (
                "lookalike_engine_batches_total",
                "Check calls on the engine (with the GPU engine, one per batch of requests).",
                m.batches,
            ),
            (
                "lookalike_engine_batch_images_total",
                "Images those calls checked; divided by the calls, the mean batch.",
                m.batch_images,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(w, "# HELP {name} {help}");
            let _ = writeln!(w, "# TYPE {name} counter");
            let _ = writeln!(w, "{name} {v}");
        }
        let gauges = [
            (
                "lookalike_requests_in_flight",
                "Check requests admitted now.",
                g.in_flight as u64,
            ),
            (
                "lookalike_index_generation",
                "Generation of the served index.",
                g.generation,
            ),
            (
                "lookalike_index_images",
                "Searchable images in the served index.",
                g.images as u64,
            ),
            (
                "lookalike_unverifiable_training_files",
                "Training files of a compact index that could not be read back to verify candidates (gone or changed).",
                g.unverifiable as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(w, "# HELP {name} {help}");
            let _ = writeln!(w, "# TYPE {name} gauge");
            let _ = writeln!(w, "{name} {v}");
        }
        out
    }
}

/// Label values escape backslash, quote and newline.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record("/v1/check", 200, Duration::from_millis(3), None);
        m.record(
            "/v1/check",
            422,
            Duration::from_millis(30),
            Some(ErrorKind::BadImage),
        );
        let text = m.render(&Gauges {
            in_flight: 0,
            generation: 7,
            images: 3,
            unverifiable: 2,
        });
        assert!(text.contains("lookalike_unverifiable_training_files 2"));
        assert!(
            text.contains("lookalike_http_requests_total{route=\"/v1/check\",status=\"200\"} 1")
        );
        assert!(
            text.contains("lookalike_http_requests_total{route=\"/v1/check\",status=\"422\"} 1")
        );
        assert!(text.contains("duration_seconds_bucket{route=\"/v1/check\",le=\"0.005\"} 1"));
        assert!(text.contains("duration_seconds_bucket{route=\"/v1/check\",le=\"0.05\"} 2"));
        assert!(text.contains("duration_seconds_count{route=\"/v1/check\"} 2"));
        assert!(text.contains("lookalike_http_errors_total{kind=\"bad_image\"} 1"));
        assert!(text.contains("lookalike_index_generation 7"));
    }
}
