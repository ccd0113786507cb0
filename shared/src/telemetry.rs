//! Structured JSON logs (tracing) and CloudWatch metrics in Embedded Metric Format.

use std::io::Write as _;

use serde_json::json;
use tracing_subscriber::EnvFilter;

/// Crates whose logs carry requests and responses whole: the Lambda runtime (the raw event,
/// with its `Authorization`, `X-Service-Key`, `?token=`, `Sec-WebSocket-Protocol` and the
/// `auth` action's token), the AWS SDK (signed headers, session tokens, secrets in answers)
/// and the HTTP stack. They never log below `info`, whatever `RUST_LOG` says, so raising the
/// level can never print a secret.
const CAPPED: [&str; 10] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
    "hyper",
    "hyper_util",
    "reqwest",
];

/// The filter directives for `requested` (`RUST_LOG`): what it asks, except any directive
/// about a capped crate, then each capped crate at `info`.
fn directives(requested: &str) -> String {
    let capped = |directive: &str| {
        let target = directive
            .split(['=', '['])
            .next()
            .unwrap_or_default()
            .trim();
        CAPPED
            .iter()
            .any(|c| target == *c || target.starts_with(&format!("{c}::")))
    };
    let mut kept: Vec<String> = requested
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !capped(d))
        .map(str::to_owned)
        .collect();
    kept.extend(CAPPED.iter().map(|c| format!("{c}=info")));
    kept.join(",")
}

/// JSON logs to stdout, filtered by `RUST_LOG` (default `info`), never below `info` for the
/// crates that log whole requests. Safe to call twice.
pub fn init() {
    let requested = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::builder().parse_lossy(directives(&requested));
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
    fn raising_the_level_leaves_the_request_logging_crates_at_info() {
        let d = directives("trace");
        assert!(d.starts_with("trace,"), "{d}");
        assert!(d.contains("lambda_runtime=info"));
        let d =
            directives("debug,lambda_runtime=trace,aws_smithy_runtime::client=trace,adsync=trace");
        let parts: Vec<&str> = d.split(',').collect();
        assert!(!parts.contains(&"lambda_runtime=trace"), "{d}");
        assert!(!parts.contains(&"aws_smithy_runtime::client=trace"), "{d}");
        assert!(
            parts.contains(&"adsync=trace") && parts.contains(&"lambda_runtime=info"),
            "{d}"
        );
    }

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
