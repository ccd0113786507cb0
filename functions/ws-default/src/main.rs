//! The Lambda of WebSocket $default (ping, resume, auth).

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_ws(adsync::ws::WsRoute::Default).await
}
