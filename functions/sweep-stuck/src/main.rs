//! The scheduled Lambda that marks products stuck in `processing` as `failed`.

#[tokio::main]
async fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::run_sweeper().await
}
