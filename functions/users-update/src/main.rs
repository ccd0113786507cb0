//! The Lambda of PATCH /users/{uid}.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_http(shared::http::Route::UpdateUser).await
}
