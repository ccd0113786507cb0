//! The Lambda of POST /products/{businessId}/{productId}/image.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::UploadProductImage).await
}
