//! Integration tests of the glm-agent binary and library.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod agent_loop;
mod cli_help;
mod cli_prompt;
mod cli_tools;
mod embedded;
mod engine;
mod evals;
mod http_server;
mod model_map;
mod replay;

use std::process::{Command, Output, Stdio};

/// Runs the binary with `args`, feeding `stdin`.
pub fn glm_agent(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_glm-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start glm-agent");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait for glm-agent")
}

/// Path of a file in the repository.
pub fn repo_file(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The glm-agent cache directory (where `setup python` installed the runtime).
pub fn cache_dir() -> std::path::PathBuf {
    glm_agent::paths::cache_dir(None, |k| std::env::var(k).ok())
}
