//! Integration tests of glm-sandbox. They need the Python runtime installed in the cache
//! directory (`cargo run --release -- setup python`), as the README's test command does first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod escape;
mod notebook;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use glm_sandbox::{CellResult, Limits, Outcome, Python, Session};

/// The cache directory the CLI uses: `GLM_AGENT_CACHE`, else `$XDG_CACHE_HOME/glm-agent`, else
/// `~/.cache/glm-agent`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GLM_AGENT_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    base.join("glm-agent")
}

/// The interpreter, loaded once per test process.
pub fn python() -> &'static Python {
    static PYTHON: OnceLock<Python> = OnceLock::new();
    PYTHON.get_or_init(|| {
        Python::load(&cache_dir(), &mut || println!("compiling the Python runtime...")).unwrap_or_else(|e| {
            panic!("{e}\nThe sandbox tests need the runtime: run `cargo run --release -- setup python` first.")
        })
    })
}

/// Limits small enough for tests to hit them quickly.
pub fn test_limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(3),
        memory_bytes: 256 << 20,
        output_bytes: 64 << 10,
        disk_bytes: 32 << 20,
        ..Limits::default()
    }
}

/// A session in a fresh temporary folder (kept alive by the returned guard).
pub fn session() -> (Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let session = python()
        .session(&dir.path().join("data"), test_limits())
        .unwrap();
    (session, dir)
}

/// Runs a cell that must complete.
pub fn ok(session: &mut Session, code: &str) -> CellResult {
    let result = session.run_cell(code).unwrap();
    assert_eq!(
        result.outcome,
        Outcome::Completed,
        "{code}\n{}",
        result.output
    );
    result
}

/// The session still works and kept `marker`.
pub fn still_works(session: &mut Session) {
    assert_eq!(ok(session, "1 + 1").output, "2\n");
    assert_eq!(ok(session, "marker").output, "'kept'\n");
}
