//! Integration tests of the embedded engine and the model mapping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod embedded;
mod folder_fuzz;
mod llamacpp;
mod model_map;
mod serve;
mod suites;
