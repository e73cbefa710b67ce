//! Integration tests of glm-tools: the registry, schemas, and the browser against local servers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod browser;
mod python;
mod registry;
mod schemas;
pub mod server;
