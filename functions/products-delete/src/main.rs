//! The Lambda of DELETE /products/{businessId}/{productId}.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::DeleteProduct))
}
