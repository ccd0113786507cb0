//! The Lambda of GET /products/{businessId}.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::ListProducts).await
}
