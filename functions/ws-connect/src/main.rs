//! The Lambda of WebSocket $connect.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Ws(adsync::ws::WsRoute::Connect))
}
