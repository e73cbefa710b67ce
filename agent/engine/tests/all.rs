//! Integration tests of the OpenAI-compatible and replay engines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod hostile;
mod openai;
