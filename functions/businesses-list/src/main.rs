//! The Lambda of GET /businesses.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::ListBusinesses).await
}
