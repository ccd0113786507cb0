//! The Lambda of PATCH /users/{uid}.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_http(adsync::http::Route::UpdateUser).await
}
