//! The Lambda of DELETE /products/{businessId}/{productId}.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::DeleteProduct).await
}
