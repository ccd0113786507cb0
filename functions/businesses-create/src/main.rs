//! The Lambda of POST /businesses.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::CreateBusiness).await
}
