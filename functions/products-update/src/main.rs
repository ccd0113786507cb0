//! The Lambda of PATCH /products/update/{businessId}/{productId}.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::UpdateProduct).await
}
