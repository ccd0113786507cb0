//! The Lambda of POST /ai/generate-ad-image.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::GenerateAdImage).await
}
