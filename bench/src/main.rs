//! `cargo run --release -p bench`: starts a release local gateway (in memory), connects
//! N users x K sockets, has every user make M mutations concurrently, and prints mutations
//! per second, HTTP and event (mutation sent -> frame received on a socket) p50/p99 latency,
//! and the server's memory. A benchmark, not a test: it prints figures and asserts only that
//! every event arrived.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Drives the local gateway and prints throughput, latency and memory.")]
struct Args {
    /// Concurrent users.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Sockets per user.
    #[arg(long, default_value_t = 3)]
    sockets: usize,
    /// Mutations per user (one business create, then product creates and updates).
    #[arg(long, default_value_t = 40)]
    mutations: usize,
    /// The gateway binary (built with `cargo build --release -p local-gateway`).
    #[arg(long, default_value = "target/release/local-gateway")]
    gateway: String,
    /// Port for the gateway.
    #[arg(long, default_value_t = 3917)]
    port: u16,
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (resident, peak resident) in KiB, from /proc.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

type Arrivals = Arc<Mutex<HashMap<(usize, u64), Vec<Instant>>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let child = Command::new(&args.gateway)
        .args(["--memory", "--port", &args.port.to_string()])
        // A load test is the one caller the per-user budgets are meant to stop.
        .args(["--mutations-per-minute", "1000000000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}); build it with cargo build --release -p local-gateway",
                args.gateway
            )
        })?;
    let pid = child.id();
    let _gateway = Gateway(child);
    let base = format!("http://127.0.0.1:{}", args.port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()?;
    let ready = Instant::now();
    while http.get(format!("{base}/")).send().await.is_err() {
        if ready.elapsed() > Duration::from_secs(20) {
            return Err("the gateway did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (idle_rss, _) = memory_kib(pid);

    let mut tokens = Vec::new();
    for u in 0..args.users {
        let r: Value = http
            .get(format!("{base}/dev/token?uid=bench-user-{u}"))
            .send()
            .await?
            .json()
            .await?;
        tokens.push(r["token"].as_str().ok_or("no token")?.to_owned());
    }

    let arrivals: Arrivals = Arc::default();
    let mut readers = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        for _ in 0..args.sockets {
            let url = format!("ws://127.0.0.1:{}/ws?token={token}", args.port);
            let (ws, _) = tokio_tungstenite::connect_async(url).await?;
            let arrivals = arrivals.clone();
            let expected = args.mutations;
            readers.push(tokio::spawn(async move {
                let (_, mut stream) = ws.split();
                let mut seen = 0;
                while seen < expected {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_secs(30), stream.next()).await
                    else {
                        break;
                    };
                    if let Message::Text(text) = msg
                        && let Ok(frame) = serde_json::from_str::<Value>(&text)
                        && let Some(seq) = frame["seq"].as_u64()
                    {
                        let now = Instant::now();
                        if let Ok(mut a) = arrivals.lock() {
                            a.entry((u, seq)).or_default().push(now);
                        }
                        seen += 1;
                    }
                }
                seen
            }));
        }
    }
    let (connected_rss, _) = memory_kib(pid);

    let started = Instant::now();
    let mut users = Vec::new();
    for (u, token) in tokens.into_iter().enumerate() {
        let http = http.clone();
        let base = base.clone();
        let mutations = args.mutations;
        users.push(tokio::spawn(async move {
            let mut sent: Vec<(u64, Instant, f64)> = Vec::new();
            let mut business = String::new();
            let mut product = String::new();
            for m in 0..mutations {
                let (method, path, body) = match m {
                    0 => (
                        reqwest::Method::POST,
                        "/businesses".to_owned(),
                        json!({"name": format!("Shop {u}")}),
                    ),
                    1 => (
                        reqwest::Method::POST,
                        format!("/products/{business}"),
                        json!({"name": "Mug", "price": 9.5}),
                    ),
                    _ => (
                        reqwest::Method::PATCH,
                        format!("/products/update/{business}/{product}"),
                        json!({"price": m, "caption": format!("Caption {m}")}),
                    ),
                };
                let t0 = Instant::now();
                let r = http
                    .request(method, format!("{base}{path}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let Ok(r) = r else { break };
                let ok = r.status().is_success();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let http_ms = t0.elapsed().as_secs_f64() * 1000.0;
                if !ok {
                    eprintln!("user {u} mutation {m} failed: {v}");
                    break;
                }
                match m {
                    0 => business = v["id"].as_str().unwrap_or_default().to_owned(),
                    1 => product = v["id"].as_str().unwrap_or_default().to_owned(),
                    _ => {}
                }
                sent.push(((m + 1) as u64, t0, http_ms));
            }
            (u, sent)
        }));
    }
    let mut sent_all = Vec::new();
    for user in users {
        sent_all.push(user.await?);
    }
    let elapsed = started.elapsed();
    let mut delivered = 0;
    for reader in readers {
        delivered += reader.await?;
    }
    let (final_rss, peak_rss) = memory_kib(pid);

    let arrivals = arrivals.lock().map_err(|_| "poisoned")?;
    let mut http_ms = Vec::new();
    let mut event_ms = Vec::new();
    for (u, sent) in &sent_all {
        for (seq, t0, ms) in sent {
            http_ms.push(*ms);
            for at in arrivals.get(&(*u, *seq)).into_iter().flatten() {
                event_ms.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
            }
        }
    }
    http_ms.sort_by(f64::total_cmp);
    event_ms.sort_by(f64::total_cmp);
    let mutations = http_ms.len();
    let expected = args.users * args.sockets * args.mutations;
    println!("users x sockets       {} x {}", args.users, args.sockets);
    println!(
        "mutations             {mutations} in {:.2} s = {:.0} /s",
        elapsed.as_secs_f64(),
        mutations as f64 / elapsed.as_secs_f64()
    );
    println!("events delivered      {delivered} of {expected}");
    println!(
        "HTTP latency  p50/p99 {:.1} / {:.1} ms",
        percentile(&http_ms, 50.0),
        percentile(&http_ms, 99.0)
    );
    println!(
        "event latency p50/p99 {:.1} / {:.1} ms (mutation sent -> frame on socket)",
        percentile(&event_ms, 50.0),
        percentile(&event_ms, 99.0)
    );
    println!(
        "server memory (RSS)   idle {} MiB, connected {} MiB, end {} MiB, peak {} MiB",
        idle_rss / 1024,
        connected_rss / 1024,
        final_rss / 1024,
        peak_rss / 1024
    );
    if delivered != expected {
        return Err(format!("{} events were not delivered", expected - delivered).into());
    }
    Ok(())
}
