//! The Lambda of PATCH /products/update/{businessId}/{productId}.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::UpdateProduct).await
}
