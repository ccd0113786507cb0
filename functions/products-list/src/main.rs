//! The Lambda of GET /products/{businessId}.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::ListProducts).await
}
