//! The Lambda of POST /products/{businessId}/{productId}/image.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::UploadProductImage).await
}
