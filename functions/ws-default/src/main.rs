//! The Lambda of WebSocket $default (ping, resume, auth).

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Ws(adsync::ws::WsRoute::Default))
}
