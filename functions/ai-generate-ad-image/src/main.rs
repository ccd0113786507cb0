//! The Lambda of POST /ai/generate-ad-image.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::GenerateAdImage).await
}
