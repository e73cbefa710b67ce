//! Tests of the embedded engine: the GLM-4 -> Qwen2 mapping checked numerically, the engine on a
//! tiny generated checkpoint, hostile model folders, and every built-in eval suite run on it.
//! Tests through the `glm-agent` binary with real clients and servers live in `agent/cli/tests`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod embedded;
mod folder_fuzz;
mod model_map;
mod suites;
