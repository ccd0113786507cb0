//! The Lambda of DELETE /products/{businessId}/{productId}.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::DeleteProduct).await
}
