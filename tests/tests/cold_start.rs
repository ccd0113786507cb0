//! `events/env.json` starts every function as `sam local invoke --env-vars events/env.json`
//! would run it: each binary of `functions/` gets the variables its template declares (the
//! Globals and its own), with env.json's values laid over them, plus what Lambda and SAM CLI
//! set, and runs against an emulated Lambda Runtime API until it asks for its first
//! invocation, which it does only once its cold start (configuration, clients, warm-up) is
//! done. A function that stops at cold start posts an init error or exits instead.
//!
//! The binaries come from `FUNCTION_BIN_DIR` (`scripts/test` builds them all).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration_tests::runtime_api::{Runtime, drain};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// env.json's `Parameters`: the variables it gives every function (that declares them).
fn sample_environment() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("{ROOT}/events/env.json")).expect("env.json");
    let json: Value = serde_json::from_str(&text).expect("env.json is JSON");
    json["Parameters"]
        .as_object()
        .expect("a Parameters object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
        .collect()
}

/// What SAM CLI hands the function for a variable the template sets to `value` and env.json
/// does not override: a literal as written, a parameter's default for `!Ref Parameter`;
/// `None` for what SAM CLI cannot resolve locally (a secret's `{{resolve:...}}`, a resource).
fn local_value(template: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if let Some(parameter) = value.strip_prefix("!Ref ") {
        let block = template
            .split_once(&format!("\n  {parameter}:\n"))?
            .1
            .split("\n  ")
            .take_while(|l| l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n");
        return block
            .lines()
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .map(|d| d.trim().trim_matches('\'').to_owned());
    }
    if value.starts_with('!') {
        return None;
    }
    Some(value.trim_matches('\'').to_owned())
}

#[tokio::test]
async fn the_sample_environment_starts_every_function() {
    let Ok(dir) = std::env::var("FUNCTION_BIN_DIR") else {
        panic!(
            "FUNCTION_BIN_DIR is not set: run scripts/test, or build every function \
             (cargo build $(for f in functions/*/; do echo -p $(basename $f); done)) and set it \
             to target/debug"
        );
    };
    let template = integration_tests::template::text();
    let declared = integration_tests::template::environment(&template);
    let sample = sample_environment();
    let globals = declared.get("").cloned().unwrap_or_default();
    assert!(!globals.is_empty(), "no Globals variables found");
    for name in sample.keys() {
        assert!(
            declared.values().flatten().any(|(v, _)| v == name),
            "events/env.json sets {name}, which no function declares: SAM CLI would drop it"
        );
    }

    let crates: Vec<String> = std::fs::read_dir(format!("{ROOT}/functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(crates.len() >= 17, "{crates:?}");
    let starts = crates.iter().map(|binary| {
        let mut env = BTreeMap::new();
        for (name, value) in globals.iter().chain(&declared[binary.as_str()]) {
            let local = match sample.get(name) {
                Some(sample) => sample.clone(),
                None => local_value(&template, value).unwrap_or_else(|| {
                    panic!(
                        "{binary}: {name} is `{value}` in the template, which `sam local` cannot \
                         resolve: give it a local value in events/env.json"
                    )
                }),
            };
            env.insert(name.clone(), local);
        }
        start(std::path::Path::new(&dir).join(binary), binary.clone(), env)
    });
    let mut failures = Vec::new();
    for (binary, outcome) in futures_util::future::join_all(starts).await {
        match outcome {
            Ok(init) => println!("{binary}: first invocation requested {init:?} after spawn"),
            Err(why) => failures.push(format!("{binary}: {why}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs `path` with `env` until it asks for its first invocation (its init time), or why not.
async fn start(
    path: std::path::PathBuf,
    binary: String,
    env: BTreeMap<String, String>,
) -> (String, Result<Duration, String>) {
    assert!(
        path.exists(),
        "{} is missing: cargo build -p {binary}",
        path.display()
    );
    let runtime = Runtime::default();
    let api = runtime.serve().await;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(&path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SAM_LOCAL", "true")
        .envs(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    // The warm-up's calls to env.json's hosts fail here (no `host.docker.internal`), and
    // are bounded by the connect timeout: the function starts all the same.
    let initialised = tokio::select! {
        initialised = runtime.initialised(Duration::from_secs(30)) => initialised,
        exit = child.wait() => {
            let _ = exit;
            false
        }
    };
    let init = spawned.elapsed();
    let _ = child.start_kill();
    let exit = child.wait().await;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout.await.unwrap_or_default()),
        String::from_utf8_lossy(&stderr.await.unwrap_or_default())
    );
    let outcome = if initialised && runtime.posted().is_empty() {
        Ok(init)
    } else {
        Err(format!(
            "did not reach its first invocation (posted {:?}, {exit:?}); its output:\n{output}",
            runtime.posted()
        ))
    };
    (binary, outcome)
}
