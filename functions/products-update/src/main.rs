//! The Lambda of PATCH /products/update/{businessId}/{productId}.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::UpdateProduct))
}
