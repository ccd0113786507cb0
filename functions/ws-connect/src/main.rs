//! The Lambda of WebSocket $connect.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_ws(shared::ws::WsRoute::Connect).await
}
