//! Helpers shared by glm-agent's tests, benchmarks and examples; not published.
//!
//! - [`http`]: a tiny threaded HTTP/1.1 server on 127.0.0.1 whose handler sees each request;
//! - [`checkpoint`]: safetensors checkpoints written from tensors in memory, with the tiny
//!   GLM-4 tokenizer;
//! - [`glm_agent`]: runs the `glm-agent` binary of this build;
//! - [`cache_dir`] and [`repo_file`]: where the runtime and the repository's files are.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod checkpoint;
pub mod http;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The `glm-agent` binary of this build: `GLM_AGENT_BIN`, else `glm-agent` in the profile
/// folder above the running test (`target/release/deps/..`), where `cargo test --workspace`
/// builds it.
pub fn glm_agent_exe() -> PathBuf {
    if let Some(path) = std::env::var_os("GLM_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's path");
    let mut dir = exe.parent().expect("the test's folder").to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let bin = dir.join(format!("glm-agent{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --release -p glm-agent-cli`; `cargo test \
         --release --workspace` builds it) or set GLM_AGENT_BIN",
        bin.display()
    );
    bin
}

/// A `glm-agent` command of this build.
pub fn glm_agent_command() -> Command {
    Command::new(glm_agent_exe())
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn glm_agent(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = glm_agent_command()
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

/// The path of a file of the repository, from its root (`evals/traces/tokenizer.json`).
pub fn repo_file(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The glm-agent cache directory (where `setup python` installed the runtime).
pub fn cache_dir() -> PathBuf {
    glm_engine::paths::cache_dir(None, |k| std::env::var(k).ok())
}

/// The tiny GLM-4 tokenizer (GLM-4's control tokens at their real ids, a byte-level vocabulary).
pub fn tiny_encoder() -> glm_prompts::Encoder {
    glm_prompts::Encoder::new(glm_prompts::tiny::tiny_tokenizer().unwrap()).unwrap()
}
