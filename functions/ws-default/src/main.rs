//! The Lambda of WebSocket $default (ping, resume, auth).

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_ws(shared::ws::WsRoute::Default).await
}
