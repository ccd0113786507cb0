//! `resume` replays a backlog of any size in bounded steps, over a real socket of the local
//! gateway (embedded stores: this is about how much one invocation does, not about races).

mod common;

use adsync::events::Outbox;
use adsync::ids::Uid;
use adsync::ws::{MAX_RESUME_BACKLOG, RESUME_PAGE};
use common::{next, send};
use serde_json::{Value, json};

#[tokio::test]
async fn a_large_backlog_is_replayed_in_bounded_steps_and_a_huge_one_resyncs() {
    let running = local_gateway::start(local_gateway::Options::ephemeral())
        .await
        .expect("gateway starts");
    let app = running.app.clone();
    let base = running.spawn();
    let alice = Uid::parse("alice").unwrap();
    let total = 2 * RESUME_PAGE as u64 + 50;
    for n in 0..total {
        Outbox::open(&app, &alice)
            .await
            .unwrap()
            .publish("ai:progress", json!({"n": n}))
            .await;
    }
    let token: Value = reqwest::get(format!("{base}/dev/token?uid=alice"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/ws?token={}",
        base.replace("http://", "ws://"),
        token["token"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    let mut since = 0;
    let mut steps = 0;
    loop {
        send(&mut ws, json!({"action": "resume", "since": since})).await;
        steps += 1;
        let mut events = 0;
        let last = loop {
            let frame = next(&mut ws).await;
            if frame.get("seq").is_none() {
                break frame;
            }
            assert_eq!(frame["seq"], since + 1, "in order, none skipped");
            since += 1;
            events += 1;
        };
        assert!(events <= RESUME_PAGE, "one step is bounded: {events}");
        match last["event"].as_str() {
            Some("resume:partial") => {
                assert_eq!(last["data"]["seq"], since);
                assert_eq!(
                    last["data"]["retryAfterMs"], 0,
                    "a page limit: go on at once"
                );
            }
            Some("resume:done") => {
                assert_eq!(last["data"]["seq"], total);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((since, steps), (total, 3));

    // Further behind than the documented limit: a bootstrap is cheaper than the replay.
    for _ in 0..MAX_RESUME_BACKLOG {
        Outbox::open(&app, &alice)
            .await
            .unwrap()
            .abandon(true)
            .await;
    }
    send(&mut ws, json!({"action": "resume", "since": 10})).await;
    let frame = next(&mut ws).await;
    assert_eq!(frame["event"], "resync:required");
    assert_eq!(frame["data"]["seq"], total + MAX_RESUME_BACKLOG);
}
