//! Raising the log level never logs a secret: the functions that receive ID tokens (the
//! `Authorization` header, `?token=`, `Sec-WebSocket-Protocol`, the `auth` action) and the
//! service key run as Lambda runs them, at `RUST_LOG=trace`, and their whole output is
//! searched for those values. `lambda_runtime` logs each raw event at TRACE; the telemetry
//! caps it.
//!
//! Metrics (EMF lines) are written whatever the level, since raising it must not blind the
//! operators. A secret read from Secrets Manager (on moto) is not logged either.
//!
//! The function binaries come from `FUNCTION_BIN_DIR` (`scripts/test` builds them); the
//! Lambda Runtime API is emulated (`integration_tests::runtime_api`).

use std::process::Stdio;

use integration_tests::ManagementRecorder;
use integration_tests::runtime_api::{Runtime, drain};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The service key the broadcast sample event carries.
const SERVICE_KEY: &str = "local-service-key";

fn sample_event(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/events/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs the function `binary` on `events` at TRACE, on a table of its own; its answers and
/// its whole output.
async fn run_at_trace(binary: &str, events: &[Value]) -> (Vec<(String, Value)>, String) {
    run(binary, events, "trace", &fresh_table().await, &[]).await
}

/// A new connection table on the DynamoDB server.
async fn fresh_table() -> String {
    let table = format!(
        "trace-{}",
        adsync::ids::Uid::generate().as_str().to_lowercase()
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(required("DYNAMODB_ENDPOINT"))
            .build(),
    );
    local_gateway::tables::create_table(&dynamodb, &table)
        .await
        .unwrap();
    table
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test"))
}

/// Runs the function `binary` on `events` with `RUST_LOG=rust_log` over `table`, its
/// settings changed by `changes` (a value, or `None` to unset); its answers and its whole
/// output.
async fn run(
    binary: &str,
    events: &[Value],
    rust_log: &str,
    table: &str,
    changes: &[(&str, Option<&str>)],
) -> (Vec<(String, Value)>, String) {
    let Ok(dir) = std::env::var("FUNCTION_BIN_DIR") else {
        panic!(
            "FUNCTION_BIN_DIR is not set: run scripts/test, or build the functions with \
             `cargo build -p auth-login -p broadcast -p ws-connect -p ws-default` and set it \
             to target/debug"
        );
    };
    let path = std::path::Path::new(&dir).join(binary);
    assert!(
        path.exists(),
        "{} is missing: cargo build -p {binary}",
        path.display()
    );
    let management = ManagementRecorder::start().await;

    let runtime = Runtime::with_events(events);
    let api = runtime.serve().await;
    let mut command = tokio::process::Command::new(&path);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        // Emulator tokens, as under `sam local`.
        .env("AWS_SAM_LOCAL", "true")
        .env("AUTH_MODE", "emulator")
        .env("FIREBASE_PROJECT_ID", "demo-ads")
        .env(
            "FIRESTORE_EMULATOR_HOST",
            required("FIRESTORE_EMULATOR_HOST"),
        )
        .env("DYNAMODB_ENDPOINT", required("DYNAMODB_ENDPOINT"))
        .env("CONNECTIONS_TABLE", table)
        .env("WEBSOCKET_MANAGEMENT_URL", &management.url)
        .env("SERVICE_KEY", SERVICE_KEY)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in changes {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    // Read as it comes: a full pipe would block the function's logging, and the function.
    let mut child = child;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    // A function that fails its init exits; one that ran the events idles, waiting for the
    // next: stopping it ends its output.
    let answers = tokio::select! {
        answers = runtime.answers(events.len()) => answers,
        _ = child.wait() => runtime.posted(),
    };
    let _ = child.start_kill();
    child.wait().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout.await.unwrap()),
        String::from_utf8_lossy(&stderr.await.unwrap())
    );
    (answers, text)
}

/// The part of an ID token that makes it one (its claims): found anywhere, it leaked.
fn token_claims(token: &str) -> &str {
    token.split('.').nth(1).unwrap()
}

fn assert_no_secret(function: &str, output: &str, secrets: &[&str]) {
    assert!(
        output.lines().count() > 3,
        "{function} logged at TRACE: {output}"
    );
    for secret in secrets {
        assert!(
            !output.contains(secret),
            "{function} logged a secret ({}…) at TRACE:\n{output}",
            &secret[..12]
        );
    }
}

#[tokio::test]
async fn functions_at_trace_log_no_token_and_no_service_key() {
    let login = sample_event("auth-login");
    let bearer = login["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = bearer.trim_start_matches("Bearer ").to_owned();
    let claims = token_claims(&token);

    let (answers, output) = run_at_trace("auth-login", &[login]).await;
    assert_eq!(answers.len(), 1, "{answers:?}\n{output}");
    assert_eq!(answers[0].1["statusCode"], 200, "{answers:?}");
    assert_no_secret("auth-login", &output, &[claims]);

    let (answers, output) = run_at_trace("broadcast", &[sample_event("broadcast")]).await;
    assert_eq!(answers[0].1["statusCode"], 202, "{answers:?}\n{output}");
    assert_no_secret("broadcast", &output, &[SERVICE_KEY]);

    let connects = [sample_event("ws-connect"), sample_event("ws-connect-query")];
    let (answers, output) = run_at_trace("ws-connect", &connects).await;
    assert_eq!(answers.len(), 2, "{answers:?}\n{output}");
    assert!(
        answers.iter().all(|(_, a)| a["statusCode"] == 200),
        "{answers:?}"
    );
    assert_no_secret("ws-connect", &output, &[claims]);

    let (answers, output) = run_at_trace("ws-default", &[sample_event("ws-default-auth")]).await;
    assert_eq!(answers.len(), 1, "{answers:?}\n{output}");
    assert_no_secret("ws-default", &output, &[claims]);
}

#[tokio::test]
async fn metrics_are_written_whatever_the_log_level() {
    // A socket of alice's, then a broadcast to it, both at RUST_LOG=error.
    let table = fresh_table().await;
    let mut runs = Vec::new();
    for (function, event) in [
        ("ws-connect", "ws-connect-query"),
        ("broadcast", "broadcast"),
    ] {
        runs.push(run(function, &[sample_event(event)], "error", &table, &[]).await);
    }
    let (answers, _) = &runs[0];
    assert_eq!(answers[0].1["statusCode"], 200, "{answers:?}");
    let (answers, output) = &runs[1];
    assert_eq!(answers[0].1["statusCode"], 202, "{answers:?}\n{output}");
    assert!(!output.contains("\"INFO\""), "RUST_LOG=error: {output}");
    let metrics: Value = output
        .lines()
        .find(|l| l.contains("\"_aws\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no metrics at RUST_LOG=error: {output}"));
    assert_eq!(metrics["EventsPushed"], 1, "{metrics}");
}

#[tokio::test]
async fn a_function_reads_its_secret_from_secrets_manager_and_logs_it_nowhere() {
    // moto speaks Secrets Manager's protocol on the DynamoDB server's port.
    let moto = required("DYNAMODB_ENDPOINT");
    let name = format!(
        "trace-service-key-{}",
        adsync::ids::Uid::generate().as_str().to_lowercase()
    );
    integration_tests::put_secret(&moto, &name, SERVICE_KEY).await;
    // The function reads its key; one whose secret does not exist stops at cold start.
    let mut runs = Vec::new();
    for (secret, rust_log) in [(name.as_str(), "trace"), ("trace-never-created", "info")] {
        let from_secrets_manager = [
            ("SERVICE_KEY", None),
            ("SERVICE_KEY_SECRET_ID", Some(secret)),
            ("SECRETS_MANAGER_ENDPOINT", Some(moto.as_str())),
        ];
        let table = fresh_table().await;
        let events = [sample_event("broadcast")];
        runs.push(
            run(
                "broadcast",
                &events,
                rust_log,
                &table,
                &from_secrets_manager,
            )
            .await,
        );
    }
    let (answers, output) = &runs[0];
    assert_eq!(answers[0].1["statusCode"], 202, "{answers:?}\n{output}");
    assert_no_secret("broadcast", output, &[SERVICE_KEY]);

    let (answers, output) = &runs[1];
    assert!(answers.is_empty(), "{answers:?}\n{output}");
    assert!(
        output.contains("SERVICE_KEY_SECRET_ID: secret `trace-never-created` does not exist"),
        "{output}"
    );
}
