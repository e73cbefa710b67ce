//! End-to-end tests through the `glm-agent` binary: the commands as a user runs them, against
//! the real clients and servers they meet (the `openai` client, MCP reference servers, llama.cpp's
//! server, BFCL's checker) and the worst peers we can write. Each module's comment says what it
//! drives. What one crate does alone is tested in that crate's own `tests/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod cli_bfcl;
mod cli_browser;
mod cli_display;
mod cli_documents;
mod cli_help;
mod cli_hostile;
mod cli_llamacpp;
mod cli_mcp;
mod cli_prompt;
mod cli_responses;
mod cli_resume;
mod cli_serve;
mod cli_serve_hostile;
mod cli_terminal;
mod cli_tools;
