//! The Lambda of POST /broadcast.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::Broadcast).await
}
