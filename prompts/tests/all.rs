//! Integration tests of glm-prompts: golden renders, parser cases, tokens and properties.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod golden;
mod parse_cases;
mod properties;
mod tokens;
