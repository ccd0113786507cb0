//! The Lambda of WebSocket $disconnect.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_ws(adsync::ws::WsRoute::Disconnect).await
}
