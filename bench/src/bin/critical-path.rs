//! `critical-path`: how many dependency round trips stand between a write and its frame on a
//! socket. Starts a local gateway on the Firestore emulator and a DynamoDB server, each behind
//! a proxy that adds `--latency-ms` to every call, makes `--writes` product updates one after
//! the other with a socket open, and prints the HTTP latency and the event latency (update
//! sent -> frame read), with the DynamoDB calls per event. With a latency L per call, an
//! event latency of about n x L means n sequential dependency calls on the way. A benchmark:
//! it prints figures and asserts only that every frame arrived.
//!
//! Needs `FIRESTORE_EMULATOR_HOST` and `DYNAMODB_ENDPOINT` (as `scripts/test` sets them) and
//! dummy AWS credentials. Runs any gateway binary that takes the basic flags, so an older
//! build can be measured the same way.

use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use integration_tests::faults::{Fault, FaultProxy, Matcher};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Measures the dependency round trips between a write and its frame.")]
struct Args {
    /// The gateway binary.
    #[arg(long, default_value = "target/release/local-gateway")]
    gateway: String,
    /// Latency added to every Firestore and DynamoDB call, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Updates to time.
    #[arg(long, default_value_t = 30)]
    writes: usize,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (see scripts/test)"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let latency = Duration::from_millis(args.latency_ms);
    let firestore = FaultProxy::start(&env("FIRESTORE_EMULATOR_HOST")).await;
    let dynamodb = FaultProxy::start(&env("DYNAMODB_ENDPOINT")).await;
    firestore.add_rule(Matcher::any(), Fault::Delay(latency));
    dynamodb.add_rule(Matcher::any(), Fault::Delay(latency));

    let suffix = std::process::id();
    let log = std::env::temp_dir().join(format!("critical-path-{suffix}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let mut gateway = tokio::process::Command::new(&args.gateway)
        .args(["--memory", "--port", "0", "--firestore-emulator"])
        .arg(firestore.host())
        .arg("--dynamodb-endpoint")
        .arg(dynamodb.url())
        .args(["--table", &format!("critical-path-{suffix}")])
        .args(["--mutations-per-minute", "1000000000"])
        .args(["--project-id", &format!("demo-critical-{suffix}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(out.try_clone().expect("log file")))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", args.gateway));
    let mut base = None;
    for _ in 0..600 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        base = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("REST API")
                .map(|r| r.trim().to_owned())
        });
        if base.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = base.expect("the gateway's banner");

    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!("{base}/dev/token?uid=alice"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = token["token"].as_str().expect("token").to_owned();
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let business: Value = post("/businesses".into(), json!({"name": "Bench"}))
        .await
        .expect("business")
        .json()
        .await
        .expect("business JSON");
    let bid = business["id"].as_str().expect("id").to_owned();
    let product: Value = post(format!("/products/{bid}"), json!({"name": "P"}))
        .await
        .expect("product")
        .json()
        .await
        .expect("product JSON");
    let pid = product["id"].as_str().expect("id").to_owned();
    let url = format!("{}/ws?token={token}", base.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket");

    dynamodb.reset_log();
    let (mut http_ms, mut event_ms) = (Vec::new(), Vec::new());
    for n in 0..args.writes {
        let started = Instant::now();
        let response = http
            .patch(format!("{base}/products/update/{bid}/{pid}"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("n{n}")}))
            .send();
        let frame = async {
            loop {
                let message = socket.next().await.expect("socket open").expect("frame");
                if let Message::Text(text) = message {
                    let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                    if frame["event"] == "product:updated"
                        && frame["data"]["name"] == format!("n{n}")
                    {
                        return started.elapsed();
                    }
                }
            }
        };
        let (response, arrived) = tokio::join!(
            async {
                let r = response.await.expect("update");
                (r.status(), started.elapsed())
            },
            tokio::time::timeout(Duration::from_secs(10), frame)
        );
        assert!(response.0.is_success(), "{}", response.0);
        http_ms.push(response.1.as_secs_f64() * 1000.0);
        event_ms.push(arrived.expect("the frame arrived").as_secs_f64() * 1000.0);
    }
    let calls = dynamodb.requests().len() as f64 / args.writes as f64;
    gateway.kill().await.expect("stop the gateway");
    for figures in [&mut http_ms, &mut event_ms] {
        figures.sort_by(f64::total_cmp);
    }
    let l = args.latency_ms as f64;
    println!(
        "gateway {}; {} ms added to every Firestore and DynamoDB call; {} updates",
        args.gateway, args.latency_ms, args.writes
    );
    println!(
        "HTTP   p50 {:6.1} ms  p90 {:6.1} ms  ({:.1} x latency)",
        percentile(&http_ms, 0.5),
        percentile(&http_ms, 0.9),
        percentile(&http_ms, 0.5) / l
    );
    println!(
        "event  p50 {:6.1} ms  p90 {:6.1} ms  ({:.1} x latency)",
        percentile(&event_ms, 0.5),
        percentile(&event_ms, 0.9),
        percentile(&event_ms, 0.5) / l
    );
    println!("DynamoDB calls per update: {calls:.1}");
}
