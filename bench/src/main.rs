//! `cargo run --release -p bench`: starts a release local gateway (in memory), connects
//! N users x K sockets, has every user make W warm-up mutations, then M measured ones, all
//! users concurrently, and prints for the measured ones: mutations per second, HTTP and event
//! (mutation sent -> frame received on a socket) p50/p99 latency, the server's CPU time per
//! mutation (and the load generator's own, which shares the machine), and the server's
//! memory. A benchmark, not a test: it prints figures and asserts only that every event
//! arrived.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
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
    /// Measured mutations per user (product updates, after the warm-up).
    #[arg(long, default_value_t = 100)]
    mutations: usize,
    /// Mutations per user before the measured ones (a business create, a product create,
    /// then product updates); at least 2.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..))]
    warmup: u64,
    /// Push through the gateway's own Management API with the AWS SDK, as the functions do,
    /// instead of straight to its sockets.
    #[arg(long)]
    push_via_management_api: bool,
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

/// CPU time (user + system) of process `pid` so far, from /proc (in clock ticks of 10 ms).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the command.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
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

/// What the load generator reads of a frame: its seq (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct FrameSeq {
    seq: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut command = Command::new(&args.gateway);
    if args.push_via_management_api {
        command.arg("--push-via-management-api");
    }
    let child = command
        .args(["--memory", "--port", &args.port.to_string()])
        // A load test is the one caller the per-user budgets are meant to stop.
        .args(["--mutations-per-minute", "1000000000"])
        // Its default level: the per-event log lines are part of the cost.
        .env("RUST_LOG", "info")
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

    // Each socket's reader keeps its own arrivals (no lock shared by the readers).
    let mut readers = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        for _ in 0..args.sockets {
            let url = format!("ws://127.0.0.1:{}/ws?token={token}", args.port);
            let (ws, _) = tokio_tungstenite::connect_async(url).await?;
            let expected = args.warmup as usize + args.mutations;
            readers.push(tokio::spawn(async move {
                let (_, mut stream) = ws.split();
                let mut arrived: Vec<(u64, Instant)> = Vec::with_capacity(expected);
                while arrived.len() < expected {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_secs(30), stream.next()).await
                    else {
                        break;
                    };
                    if let Message::Text(text) = msg
                        && let Ok(FrameSeq { seq: Some(seq) }) = serde_json::from_str(&text)
                    {
                        arrived.push((seq, Instant::now()));
                    }
                }
                (u, arrived)
            }));
        }
    }
    let (connected_rss, _) = memory_kib(pid);

    // The warm-up: each user's business and product, then updates, not measured.
    let mut users = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        let user = User {
            u,
            token: token.clone(),
            business: String::new(),
            product: String::new(),
        };
        let (http, base) = (http.clone(), base.clone());
        let warmup = args.warmup;
        users.push(tokio::spawn(async move {
            let mut user = user;
            let warmed = user.mutate(&http, &base, 0..warmup).await;
            (user, warmed)
        }));
    }
    let mut warmed_users = Vec::new();
    for user in users {
        let (user, warmed) = user.await?;
        if warmed.len() as u64 != args.warmup {
            return Err(format!("user {} failed during the warm-up", user.u).into());
        }
        warmed_users.push(user);
    }

    let server = pid.to_string();
    let (server_cpu0, own_cpu0) = (cpu_time(&server), cpu_time("self"));
    let started = Instant::now();
    let mut users = Vec::new();
    for mut user in warmed_users {
        let (http, base) = (http.clone(), base.clone());
        let measured = args.warmup..args.warmup + args.mutations as u64;
        users.push(tokio::spawn(async move {
            let sent = user.mutate(&http, &base, measured).await;
            (user.u, sent)
        }));
    }
    let mut sent_all = Vec::new();
    for user in users {
        sent_all.push(user.await?);
    }
    let elapsed = started.elapsed();
    let (server_cpu, own_cpu) = (
        cpu_time(&server).saturating_sub(server_cpu0),
        cpu_time("self").saturating_sub(own_cpu0),
    );
    let mut delivered = 0;
    let mut arrivals: HashMap<(usize, u64), Vec<Instant>> = HashMap::new();
    for reader in readers {
        let (u, arrived) = reader.await?;
        delivered += arrived.len();
        for (seq, at) in arrived {
            arrivals.entry((u, seq)).or_default().push(at);
        }
    }
    let (final_rss, peak_rss) = memory_kib(pid);

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
    let expected = args.users * args.sockets * (args.warmup as usize + args.mutations);
    let per_mutation = |cpu: Duration| cpu.as_secs_f64() * 1e6 / mutations.max(1) as f64;
    println!(
        "users x sockets       {} x {} ({}, after {} warm-up mutations each)",
        args.users,
        args.sockets,
        if args.push_via_management_api {
            "pushes through the Management API"
        } else {
            "pushes straight to the sockets"
        },
        args.warmup
    );
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
        "CPU per mutation      server {:.0} µs, load generator {:.0} µs (user + system, 10 ms ticks)",
        per_mutation(server_cpu),
        per_mutation(own_cpu)
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

/// One user of the load: its token, and the business and product its updates touch.
struct User {
    u: usize,
    token: String,
    business: String,
    product: String,
}

impl User {
    /// Makes mutations `range` of this user one after the other (0: the business, 1: the
    /// product, then updates of it): for each, its seq, when it was sent and its HTTP
    /// latency in ms. Stops at the first failure.
    async fn mutate(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        range: std::ops::Range<u64>,
    ) -> Vec<(u64, Instant, f64)> {
        let mut sent = Vec::new();
        for m in range {
            let (method, path, body) = match m {
                0 => (
                    reqwest::Method::POST,
                    "/businesses".to_owned(),
                    json!({"name": format!("Shop {}", self.u)}),
                ),
                1 => (
                    reqwest::Method::POST,
                    format!("/products/{}", self.business),
                    json!({"name": "Mug", "price": 9.5}),
                ),
                _ => (
                    reqwest::Method::PATCH,
                    format!("/products/update/{}/{}", self.business, self.product),
                    json!({"price": m, "caption": format!("Caption {m}")}),
                ),
            };
            let t0 = Instant::now();
            let r = http
                .request(method, format!("{base}{path}"))
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await;
            let Ok(r) = r else { break };
            let ok = r.status().is_success();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let http_ms = t0.elapsed().as_secs_f64() * 1000.0;
            if !ok {
                eprintln!("user {} mutation {m} failed: {v}", self.u);
                break;
            }
            match m {
                0 => self.business = v["id"].as_str().unwrap_or_default().to_owned(),
                1 => self.product = v["id"].as_str().unwrap_or_default().to_owned(),
                _ => {}
            }
            sent.push((m + 1, t0, http_ms));
        }
        sent
    }
}
