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

/// The CloudWatch namespace of the backend's metrics.
pub const NAMESPACE: &str = "AdSync";

/// Every metric the backend emits, with its unit: what `template.yaml`'s alarms and dashboard
/// may name (a test keeps them to these).
pub const METRICS: [(&str, &str); 7] = [
    ("EventsPushed", "Count"),
    ("GoneConnections", "Count"),
    ("FailedPushes", "Count"),
    ("PushLatency", "Milliseconds"),
    ("GenerationsEnriched", "Count"),
    ("GenerationsFailed", "Count"),
    ("StuckProductsFailed", "Count"),
];

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
    write(&push_values(metrics));
}

/// One ad generation that took its product: made (`enriched`) or not (`failed`).
pub fn emit_generation(enriched: bool) {
    write(&generation_values(enriched));
}

/// Products a sweep found stuck in `processing` and marked `failed`.
pub fn emit_stuck(failed: usize) {
    write(&stuck_values(failed));
}

type Values = Vec<(&'static str, serde_json::Value)>;

fn push_values(m: &PushMetrics) -> Values {
    vec![
        ("EventsPushed", json!(m.events_pushed)),
        ("GoneConnections", json!(m.gone_connections)),
        ("FailedPushes", json!(m.failed_pushes)),
        ("PushLatency", json!(m.push_latency_ms)),
    ]
}

fn generation_values(enriched: bool) -> Values {
    vec![
        ("GenerationsEnriched", json!(u64::from(enriched))),
        ("GenerationsFailed", json!(u64::from(!enriched))),
    ]
}

fn stuck_values(failed: usize) -> Values {
    vec![("StuckProductsFailed", json!(failed))]
}

fn write(values: &[(&str, serde_json::Value)]) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else {
        return;
    };
    let line = emf_line(&function, values, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// The EMF line of `values`, each a metric of [`METRICS`] (its unit from there), by function
/// and, with no dimension, summed over every function (what the alarms watch).
fn emf_line(
    function: &str,
    values: &[(&str, serde_json::Value)],
    timestamp_ms: i64,
) -> serde_json::Value {
    let declared: Vec<serde_json::Value> = values
        .iter()
        .map(|(name, _)| {
            let unit = METRICS
                .iter()
                .find(|(known, _)| known == name)
                .map_or("None", |(_, unit)| unit);
            json!({"Name": name, "Unit": unit})
        })
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"], []],
                "Metrics": declared,
            }]
        },
        "FunctionName": function,
    });
    for (name, value) in values {
        line[*name] = value.clone();
    }
    line
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
        let line = emf_line("products-update", &push_values(&m), 1_700_000_000_000);
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
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][3]["Unit"],
            "Milliseconds"
        );
        // By function, and summed over all of them (no dimension).
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"], []])
        );
    }

    #[test]
    fn every_metric_of_the_list_is_emitted_and_nothing_else() {
        let mut emitted: Vec<&str> = push_values(&PushMetrics::default())
            .into_iter()
            .chain(generation_values(true))
            .chain(stuck_values(1))
            .map(|(name, _)| name)
            .collect();
        emitted.sort_unstable();
        let mut listed: Vec<&str> = METRICS.iter().map(|(name, _)| *name).collect();
        listed.sort_unstable();
        assert_eq!(emitted, listed);
        let failed = generation_values(false);
        assert_eq!(failed[1], ("GenerationsFailed", json!(1)));
    }
}
