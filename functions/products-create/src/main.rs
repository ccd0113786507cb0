//! The Lambda of POST /products/{businessId}.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::CreateProduct))
}
