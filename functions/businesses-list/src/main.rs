//! The Lambda of GET /businesses.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::ListBusinesses).await
}
