//! Integration tests of the glm-agent command line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod cli_bfcl;
mod cli_browser;
mod cli_help;
mod cli_hostile;
mod cli_mcp;
mod cli_prompt;
mod cli_serve_hostile;
mod cli_tools;
