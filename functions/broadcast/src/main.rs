//! The Lambda of POST /broadcast.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::Broadcast).await
}
