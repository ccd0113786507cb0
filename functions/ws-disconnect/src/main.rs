//! The Lambda of WebSocket $disconnect.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_ws(shared::ws::WsRoute::Disconnect).await
}
