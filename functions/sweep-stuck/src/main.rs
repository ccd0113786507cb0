//! The scheduled Lambda that marks products stuck in `processing` as `failed`.

#[tokio::main]
async fn main() -> Result<(), shared::lambda::Error> {
    shared::lambda::run_sweeper().await
}
