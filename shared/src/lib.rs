//! The shared library of the real-time sync backend: every Lambda is a thin binary over it.

pub mod ai;
pub mod app;
pub mod auth;
pub mod config;
pub mod contract;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod function;
#[cfg(test)]
mod generated;
pub mod google;
pub mod ids;
pub mod images;
pub mod push;
pub mod registry;
pub mod secrets;
pub mod snapshot;
pub mod store;

pub use app::App;
pub use error::AppError;
pub mod events;
pub mod generate;
pub mod handlers;
pub mod http;
pub mod lambda;
pub mod limits;
pub mod outbound;
pub mod telemetry;
pub mod typescript;
pub mod ws;
