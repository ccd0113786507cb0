//! The Lambda of WebSocket $connect.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_ws(adsync::ws::WsRoute::Connect).await
}
