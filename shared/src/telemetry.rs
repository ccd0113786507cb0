//! Structured JSON logs (tracing) and CloudWatch metrics in Embedded Metric Format.

use std::io::Write as _;

use serde_json::json;
use tracing_subscriber::EnvFilter;

/// JSON logs to stdout, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Counts and latencies of one fan-out, as operators watch them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushMetrics {
    pub events_pushed: u64,
    pub gone_connections: u64,
    pub failed_pushes: u64,
    pub push_latency_ms: Vec<f64>,
}

/// Writes `metrics` as one Embedded Metric Format line, which CloudWatch turns into metrics
/// with no client and no extra call. Only inside Lambda: locally it would be noise.
pub fn emit(metrics: &PushMetrics) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else {
        return;
    };
    let line = emf_line(&function, metrics, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn emf_line(function: &str, m: &PushMetrics, timestamp_ms: i64) -> serde_json::Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "AdSync",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "EventsPushed", "Unit": "Count"},
                    {"Name": "GoneConnections", "Unit": "Count"},
                    {"Name": "FailedPushes", "Unit": "Count"},
                    {"Name": "PushLatency", "Unit": "Milliseconds"}
                ]
            }]
        },
        "FunctionName": function,
        "EventsPushed": m.events_pushed,
        "GoneConnections": m.gone_connections,
        "FailedPushes": m.failed_pushes,
        "PushLatency": m.push_latency_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_metric_it_carries() {
        let m = PushMetrics {
            events_pushed: 2,
            gone_connections: 1,
            failed_pushes: 0,
            push_latency_ms: vec![3.5, 7.0],
        };
        let line = emf_line("products-update", &m, 1_700_000_000_000);
        let declared = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        for name in &declared {
            assert!(
                !line[name.as_str()].is_null(),
                "{name} declared but missing"
            );
        }
        assert_eq!(line["EventsPushed"], 2);
        assert_eq!(line["PushLatency"][1], 7.0);
    }
}
