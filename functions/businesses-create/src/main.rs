//! The Lambda of POST /businesses.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::CreateBusiness).await
}
