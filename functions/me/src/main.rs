//! The Lambda of GET /me.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::Me))
}
