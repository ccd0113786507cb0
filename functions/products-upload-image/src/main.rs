//! The Lambda of POST /products/{businessId}/{productId}/image.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::UploadProductImage))
}
