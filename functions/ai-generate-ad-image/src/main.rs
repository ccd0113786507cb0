//! The Lambda of POST /ai/generate-ad-image.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Http(adsync::http::Route::GenerateAdImage))
}
