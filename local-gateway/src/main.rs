//! `cargo run -p local-gateway`: the whole backend on one machine.

use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    adsync::telemetry::init();
    let options = local_gateway::Options::parse();
    let running = local_gateway::start(options).await?;
    println!("{}", running.banner());
    running.serve_until_ctrl_c().await?;
    Ok(())
}
