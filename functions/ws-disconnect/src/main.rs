//! The Lambda of WebSocket $disconnect.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Ws(adsync::ws::WsRoute::Disconnect))
}
