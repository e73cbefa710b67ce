//! Helpers shared by glm-agent's tests, benchmarks and examples; not published.
//!
//! - [`http`]: a tiny threaded HTTP/1.1 server on 127.0.0.1 whose handler sees each request;
//! - [`checkpoint`]: safetensors checkpoints written from tensors in memory, with the tiny
//!   GLM-4 tokenizer;
//! - [`glm_agent`]: runs the `glm-agent` binary of this build (built on demand);
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
/// builds it; when it is not there (`cargo test -p CRATE` of another crate), it is built there
/// first with the same profile.
pub fn glm_agent_exe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = std::env::var_os("GLM_AGENT_BIN") {
        return PathBuf::from(path);
    }
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's path");
            let mut dir = exe.parent().expect("the test's folder").to_path_buf();
            if dir.ends_with("deps") || dir.ends_with("examples") {
                dir.pop();
            }
            let bin = dir.join(format!("glm-agent{}", std::env::consts::EXE_SUFFIX));
            if !bin.exists() {
                build_binary(&dir);
            }
            assert!(
                bin.exists(),
                "{} is missing: build it (`cargo build --release -p glm-agent-cli`) or set GLM_AGENT_BIN",
                bin.display()
            );
            bin
        })
        .clone()
}

/// Builds the binary into `profile_dir` (`TARGET/release`, `TARGET/debug`, `TARGET/PROFILE`).
fn build_binary(profile_dir: &std::path::Path) {
    let target = profile_dir.parent().expect("the target folder");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let profile = if profile == "debug" { "dev" } else { profile };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building glm-agent ({profile}) for this test...");
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "glm-agent-cli",
            "--bin",
            "glm-agent",
        ])
        .args(["--profile", profile, "--manifest-path", manifest])
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building glm-agent failed");
}

/// A `glm-agent` command of this build, its standard input closed (a test that pipes one in
/// says so): an input inherited from the test runner could be an open pipe, which `run` waits
/// on briefly before going on without it.
pub fn glm_agent_command() -> Command {
    static RUN_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let run_dir = RUN_DIR.get_or_init(|| tempfile::tempdir().unwrap().keep());
    let mut command = Command::new(glm_agent_exe());
    command.stdin(Stdio::null());
    // Each test's glm-agent loads its own model: the servers of other tests (which say what
    // they hold in a folder of this process's own) are not used unless a test asks.
    command
        .env("GLM_AGENT_USE_SERVE", "false")
        .env("GLM_AGENT_RUN_DIR", run_dir);
    command
}

/// Cases per property of the fuzz tests: `PROPTEST_CASES` when set, else `default`.
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How a child process went: its output, wall time and peak resident memory.
#[derive(Debug)]
pub struct Measured {
    /// Exit status and captured output.
    pub output: Output,
    /// Wall time.
    pub elapsed: std::time::Duration,
    /// The child's peak resident set, in bytes.
    pub peak_rss: u64,
}

/// The peak resident set of a running process so far (`VmHWM` in `/proc`; Linux only).
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `command` (stdin closed, output captured) and measures its wall time and peak memory.
/// The peak is read from `/proc` every 5 ms while the process runs, so a spike in its last
/// milliseconds can be missed; it is 0 where `/proc` has no `VmHWM`.
pub fn run_measured(command: &mut Command) -> Measured {
    let started = std::time::Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(p) = peak_rss_of(pid) {
                    peak = peak.max(p);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let output = child.wait_with_output().expect("wait for the command");
    let elapsed = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    Measured {
        output,
        elapsed,
        peak_rss: watcher.join().unwrap_or(0),
    }
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
        .expect(glm_engine::paths::NO_CACHE_DIR)
}

/// Runs a test's install script (`fetch.sh CACHE`: pinned packages into the cache folder, never
/// into the repository) and returns the folder it prints; `needs` says what it takes when it fails.
pub fn fetched(script: &str, needs: &str) -> PathBuf {
    fetched_part(script, None, needs)
}

/// [`fetched`] for one part of what a script installs (`fetch.sh CACHE PART`).
pub fn fetched_part(script: &str, part: Option<&str>, needs: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(script)
        .arg(cache_dir())
        .args(part)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({needs} are needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The tiny GLM-4 tokenizer (GLM-4's control tokens at their real ids, a byte-level vocabulary).
pub fn tiny_encoder() -> glm_prompts::Encoder {
    glm_prompts::Encoder::new(glm_prompts::tiny::tiny_tokenizer().unwrap()).unwrap()
}
