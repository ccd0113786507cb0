//! The REST and WebSocket scenarios, written once against `integration_tests::transport` and
//! run on both transports: `name::lambda` (API Gateway events through the Lambda adapters, on
//! the Firestore emulator, moto, the Management API recorder and the Cloud Storage stand-in)
//! and `name::gateway` (the local gateway on its embedded stores, over real HTTP and real
//! WebSockets). What only one transport can check has its own file: `lambda_emulators.rs`
//! here, `local-gateway/tests/gateway_only.rs` there.

mod generate;
mod limits;
mod rest;
mod security;
mod upload;
mod websocket;
