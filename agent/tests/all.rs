//! Integration tests of the agent loop, traces and replay.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod agent_loop;
mod replay;
mod trace_fuzz;
