//! Engine options shared by the commands that generate: which engine, which model, how to load.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use glm_agent::engine::{Dialect, Engine, OpenAiConfig, OpenAiEngine, Pieces, ReplayEngine};
use glm_agent::exit::ExitStatus;
use glm_agent::trace::Trace;
use glm_engine_mistralrs::model::hub::{DEFAULT_MODEL, locate};
use glm_engine_mistralrs::model::{Layout, ModelError, prepare, read_dims};
use glm_engine_mistralrs::{
    Dtype, EmbeddedConfig, EmbeddedEngine, Isq, KvCache, kv_bytes_per_token, tokens_held,
    uses_paged_attention,
};
use glm_prompts::{Encoder, SpecialIds, SpecialToken};

use crate::cli::Failure;
use crate::config::EngineSettings;
use crate::setup::CommonOptions;

/// An opened engine and the ids of its model's control tokens.
pub struct Opened {
    pub engine: Box<dyn Engine>,
    /// Control-token ids from the model's tokenizer.
    pub ids: SpecialIds,
    /// The tokenizer, when one was read.
    pub encoder: Option<Encoder>,
    /// Which model, for traces.
    pub model: serde_json::Value,
}

/// The window a run may use on the embedded engine, and the bytes of keys and values a token
/// takes (layers x 2 x key/value heads x head size x the element's bytes: 4 on CPU, f32; on a GPU
/// build 2 in bf16, 1 with `--kv-cache-type f8e4m3`): the model's window
/// (`max_position_embeddings`, else `seq_length`), lowered on CPU to three quarters of the memory
/// available after loading, and on a GPU build to the GPU's memory less the bf16 weights and a
/// tenth kept for activations (`nvidia-smi`'s total; unknown, the model's window stands).
fn embedded_window(dir: &std::path::Path, kv: KvCache, dtype: Dtype) -> Option<(usize, u64)> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let window = ["max_position_embeddings", "seq_length"]
        .iter()
        .find_map(|k| config[*k].as_u64())?;
    let dims = glm_engine_mistralrs::model::Dims::of(&config);
    let per_token = kv_bytes_per_token(dims.layers, dims.kv_heads(), dims.head_dim(), kv, dtype);
    let held = if uses_paged_attention() {
        glm_engine_mistralrs::gpu_memory().map_or(u64::MAX, |total| {
            tokens_held(total, dims.params() * 2, per_token)
        })
    } else {
        glm_engine_mistralrs::available_memory()
            .map_or(u64::MAX, |free| free / 4 * 3 / per_token.max(1))
    };
    Some((window.min(held) as usize, per_token))
}

/// `--dtype` and `--kv-cache-type`, refused before anything loads when this build cannot honour
/// them.
fn kv_cache_of(settings: &EngineSettings) -> Result<(KvCache, Dtype), Failure> {
    let dtype: Dtype = parse_setting(settings.dtype.as_deref(), "--dtype")?;
    let kv: KvCache = parse_setting(settings.kv_cache_type.as_deref(), "--kv-cache-type")?;
    kv.check()
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("--kv-cache-type: {e}")))?;
    Ok((kv, dtype))
}

/// `value` (`auto` when unset) parsed, or a usage error that names `flag`.
fn parse_setting<T: std::str::FromStr<Err = String>>(
    value: Option<&str>,
    flag: &str,
) -> Result<T, Failure> {
    value
        .unwrap_or("auto")
        .parse()
        .map_err(|e: String| Failure::bad_input(anyhow::anyhow!("{flag}: {e}")))
}

/// Runs a load with standard output pointed at standard error: libraries print there while
/// loading (the tokenizers crate warns on standard output when it saves a vocabulary with holes,
/// as mistral.rs does beside freshly quantised weights), which would corrupt `--json` output, and
/// a closed pipe would make their print panic.
async fn quiet_stdout<T>(load: impl std::future::Future<Output = T>) -> T {
    #[cfg(unix)]
    {
        let _ = std::io::stdout().flush();
        let saved = nix::unistd::dup(std::io::stdout()).ok();
        let moved = saved.is_some() && nix::unistd::dup2_stdout(std::io::stderr()).is_ok();
        let out = load.await;
        let _ = std::io::stdout().flush();
        if let (true, Some(fd)) = (moved, saved) {
            let _ = nix::unistd::dup2_stdout(&fd);
        }
        out
    }
    #[cfg(not(unix))]
    load.await
}

fn engine_failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(ExitStatus::Engine, e)
}

/// A model that cannot be had (a failed download, offline) is an engine failure (exit 4);
/// a folder that is not a model is bad input (exit 2).
fn model_failed(e: ModelError) -> Failure {
    match e {
        ModelError::Unavailable(_) => engine_failed(e),
        other => Failure::bad_input(other),
    }
}

/// Prints mapping progress on stderr.
pub fn show_map_progress() -> impl FnMut(u64, u64) {
    let tty = std::io::stderr().is_terminal();
    let mut last = 0u64;
    move |done, total| {
        let percent = done * 100 / total.max(1);
        if tty || percent >= last + 10 || done == total {
            last = percent;
            let mut err = std::io::stderr().lock();
            let end = if tty { "\r" } else { "\n" };
            let _ = write!(
                err,
                "{end}Mapping GLM-4 to the Qwen2 layout (once): {percent:>3}% ({} of {} MB)",
                done >> 20,
                total >> 20
            );
            let _ = err.flush();
        }
    }
}

/// Finds (downloading unless offline) and prepares a model folder; says what it does on stderr.
pub async fn resolve_model(spec: &str, common: &CommonOptions) -> Result<PathBuf, Failure> {
    let tty = std::io::stderr().is_terminal();
    let source = locate(spec, common.is_offline(), None, tty)
        .await
        .map_err(model_failed)?;
    let started = Instant::now();
    let prepared =
        prepare(&source, &common.cache()?, &mut show_map_progress()).map_err(model_failed)?;
    if prepared.mapped_now {
        eprintln!(
            "\nMapped into {} in {:.1} s",
            prepared.dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Layout::Native(arch) = &prepared.layout {
        eprintln!("{arch}: loaded as it is");
    }
    Ok(prepared.dir)
}

/// An engine chosen and its model found, not loaded yet: [`Resolved::open`] loads it.
pub enum Resolved {
    /// The embedded engine on this prepared folder.
    Embedded {
        /// The model as the user named it.
        spec: String,
        /// The folder mistral.rs loads.
        dir: PathBuf,
    },
    /// An engine that needs no local model.
    Remote,
}

/// The engine a command runs, read once from `--engine` (its flag, variable or setting) before
/// any slow work: a typo is a usage error at once, not after the tools are readied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSpec {
    /// mistral.rs in this process.
    Embedded,
    /// An OpenAI-compatible server at this base URL.
    OpenAi(String),
    /// Recorded outputs: a JSON array of them, or a trace.
    Replay(PathBuf),
    /// Each eval case's reference outputs (`eval` only).
    Reference,
}

impl EngineSpec {
    /// Reads `embedded`, `openai:URL`, `replay:FILE` (`~/` is the home folder) or `reference`.
    pub fn parse(text: &str) -> Result<EngineSpec, String> {
        let (kind, target) = text.split_once(':').unwrap_or((text, ""));
        match (kind, target) {
            ("embedded", "") => Ok(EngineSpec::Embedded),
            ("reference", "") => Ok(EngineSpec::Reference),
            ("openai", url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(EngineSpec::OpenAi(url.to_owned()))
            }
            ("openai", url) => Err(format!(
                "`openai:{url}` needs the server's http:// or https:// address (openai:http://host:8000)"
            )),
            ("replay", path) if !path.is_empty() => Ok(EngineSpec::Replay(home(path))),
            _ => Err(format!(
                "`{text}` is not an engine: use embedded, openai:URL (an OpenAI-compatible server) or replay:FILE"
            )),
        }
    }
}

/// `path` with a leading `~/` read as the home folder.
fn home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl EngineSettings {
    /// The engine, checked, with an embedded engine's options: a bad value is a usage error
    /// (exit 2) before anything slow runs.
    pub fn spec(&self) -> Result<EngineSpec, Failure> {
        let spec = EngineSpec::parse(self.engine())
            .map_err(|e| Failure::bad_input(anyhow::anyhow!("--engine {e}")))?;
        if spec == EngineSpec::Embedded {
            kv_cache_of(self)?;
        }
        Ok(spec)
    }
}

/// Finds the model for `settings` (downloading it unless offline), before anything slow runs.
pub async fn resolve(
    settings: &EngineSettings,
    common: &CommonOptions,
) -> Result<Resolved, Failure> {
    match settings.spec()? {
        EngineSpec::Embedded => {
            let spec = settings.model().to_owned();
            let dir = resolve_model(&spec, common).await?;
            Ok(Resolved::Embedded { spec, dir })
        }
        EngineSpec::OpenAi(_) | EngineSpec::Replay(_) | EngineSpec::Reference => {
            Ok(Resolved::Remote)
        }
    }
}

/// Resolves and opens in one go.
pub async fn open(settings: &EngineSettings, common: &CommonOptions) -> Result<Opened, Failure> {
    resolve(settings, common)
        .await?
        .open(settings, common, None)
        .await
}

impl Resolved {
    /// Opens the engine. `window` is the run's `--context-tokens`, which a GPU build's paged
    /// key/value pool is allocated for (`None`: the model's window, lowered to what memory holds).
    pub async fn open(
        self,
        settings: &EngineSettings,
        common: &CommonOptions,
        window: Option<usize>,
    ) -> Result<Opened, Failure> {
        match (self, settings.spec()?) {
            (Resolved::Embedded { spec, dir }, _) => {
                let (kv, dtype) = kv_cache_of(settings)?;
                if settings.use_serve != Some(false)
                    && let Some(opened) = open_shared(settings, &spec, &dir, kv, dtype).await
                {
                    return Ok(opened);
                }
                open_embedded(settings, common, &spec, &dir, (kv, dtype), window).await
            }
            (Resolved::Remote, EngineSpec::OpenAi(url)) => open_openai(settings, &url).await,
            (Resolved::Remote, EngineSpec::Replay(path)) => open_replay(settings, &path),
            (Resolved::Remote, EngineSpec::Embedded | EngineSpec::Reference) => {
                Err(Failure::bad_input(anyhow::anyhow!(
                    "--engine {}: only `glm-agent eval` runs the reference outputs; use embedded, openai:URL or replay:FILE",
                    settings.engine()
                )))
            }
        }
    }
}

/// The model through a running `glm-agent serve` that already holds it (the newest that
/// answers), said on stderr; `None` when there is none.
async fn open_shared(
    settings: &EngineSettings,
    spec: &str,
    dir: &std::path::Path,
    kv: KvCache,
    dtype: Dtype,
) -> Option<Opened> {
    for record in crate::shared::servers_of(dir) {
        // A server that asks for a key is not used: its key is its own.
        if record.keyed {
            continue;
        }
        let through = EngineSettings {
            engine: Some(format!("openai:{}", record.base)),
            model: None,
            tokenizer: Some(dir.join("tokenizer.json")),
            ..settings.clone()
        };
        let Ok(mut opened) = open_openai(&through, &record.base).await else {
            continue;
        };
        if opened.model["dialect"].as_str() != Some(Dialect::GlmAgent.name()) {
            continue;
        }
        eprintln!(
            "Using {spec} as glm-agent serve (pid {}) holds it at {}: nothing to load (--use-serve false loads it here)",
            record.pid, record.base
        );
        let server = opened.model.clone();
        let mut model = glm_engine_mistralrs::model::fingerprint(dir);
        model["id"] = spec.into();
        model["server"] = server["server"].clone();
        model["engine"] = server["engine"].clone();
        if let Some((window, per_token)) = embedded_window(dir, kv, dtype) {
            model["context_window"] = window.into();
            model["kv_bytes_per_token"] = per_token.into();
        }
        opened.model = model;
        return Some(opened);
    }
    None
}

async fn open_openai(settings: &EngineSettings, target: &str) -> Result<Opened, Failure> {
    let (ids, encoder) = ids_from_flag(settings)?;
    let config = OpenAiConfig {
        // The default model is a repo for the embedded engine; a server is asked what it serves
        // unless a model is named.
        model: settings.model.clone().filter(|m| m != DEFAULT_MODEL),
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        ..OpenAiConfig::new(target)
    };
    let control = SpecialToken::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), ids.id(*t)))
        .collect();
    let mut engine = OpenAiEngine::connect(config, control)
        .await
        .map_err(engine_failed)?;
    // llama.cpp's server holds back ids inside a UTF-8 character; the vocabulary recovers them.
    if engine.dialect() == Dialect::LlamaCpp
        && let Some(encoder) = &encoder
    {
        engine = engine.with_pieces(Pieces::new(encoder.pieces()));
    }
    if let Some(warning) = engine.warning() {
        eprintln!("warning: {warning}");
    }
    let model = serde_json::json!({
        "server": glm_agent::engine::redact_url(target),
        "engine": engine.describe(),
        "dialect": engine.dialect().name(),
    });
    Ok(Opened {
        engine: Box::new(engine),
        ids,
        encoder,
        model,
    })
}

fn open_replay(settings: &EngineSettings, target: &std::path::Path) -> Result<Opened, Failure> {
    let (ids, encoder) = ids_from_flag(settings)?;
    let text = std::fs::read_to_string(target).map_err(|e| {
        Failure::bad_input(anyhow::anyhow!("cannot read {}: {e}", target.display()))
    })?;
    // A JSON array of outputs, or a trace (JSON lines).
    let engine = if text.trim_start().starts_with('[') {
        ReplayEngine::from_json(&text).map_err(Failure::bad_input)?
    } else {
        Trace::read(target)
            .map_err(Failure::bad_input)?
            .replay_engine()
    };
    Ok(Opened {
        engine: Box::new(engine),
        ids,
        encoder,
        model: serde_json::json!({"replay": target.display().to_string()}),
    })
}

fn ids_from_flag(settings: &EngineSettings) -> Result<(SpecialIds, Option<Encoder>), Failure> {
    match &settings.tokenizer {
        Some(path) => {
            let encoder = Encoder::from_file(path).map_err(Failure::bad_input)?;
            Ok((*encoder.special_ids(), Some(encoder)))
        }
        None => Ok((SpecialIds::glm4_9b(), None)),
    }
}

async fn open_embedded(
    settings: &EngineSettings,
    common: &CommonOptions,
    spec: &str,
    dir: &std::path::Path,
    (kv, dtype): (KvCache, Dtype),
    window: Option<usize>,
) -> Result<Opened, Failure> {
    let fits = embedded_window(dir, kv, dtype);
    let isq: Isq = settings
        .isq
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .map_err(|e: String| Failure::bad_input(anyhow::anyhow!("--isq: {e}")))?;
    let encoder = Encoder::from_file(&dir.join("tokenizer.json")).map_err(Failure::bad_input)?;
    let ids = *encoder.special_ids();
    let size =
        read_dims(dir).map_or_else(String::new, |d| format!(", {} parameters", d.size_words()));
    eprintln!(
        "Loading {spec}{size} on mistral.rs (a first quantised load takes longer; the result is saved)..."
    );
    let config = EmbeddedConfig {
        isq,
        prefix_cache: settings.prefix_cache.unwrap_or(true),
        work_dir: common.cache()?.join("engine"),
        kv_cache: kv,
        dtype,
        context_tokens: window.or(fits.map(|(w, _)| w)),
        // mistral.rs's loading steps and quantisation progress bars, on a terminal.
        verbose: std::io::stderr().is_terminal(),
        ..EmbeddedConfig::new(dir)
    };
    let config = EmbeddedConfig {
        max_sequences: settings
            .max_sequences
            .unwrap_or(config.max_sequences)
            .max(1),
        ..config
    };
    let engine = quiet_stdout(EmbeddedEngine::load(config))
        .await
        .map_err(engine_failed)?;
    let report = engine.report();
    let pool = report.paged.map_or_else(String::new, |(tokens, element)| {
        format!(
            "; keys and values: a paged pool of {tokens} tokens in {element}, {:.1} GiB",
            report.cache_budget as f64 / (1u64 << 30) as f64
        )
    });
    eprintln!(
        "Loaded in {:.1} s ({}{}{pool})",
        report.took.as_secs_f64(),
        report.reason,
        if report.from_saved {
            ", quantised weights read from the saved copy"
        } else {
            ""
        }
    );
    let mut model = glm_engine_mistralrs::model::fingerprint(dir);
    model["id"] = spec.into();
    if let Some((window, per_token)) = fits {
        model["context_window"] = window.into();
        model["kv_bytes_per_token"] = per_token.into();
    }
    if let Some((tokens, element)) = report.paged {
        model["kv_pool"] = serde_json::json!({"tokens": tokens, "type": element});
    }
    Ok(Opened {
        engine: Box::new(engine),
        ids,
        encoder: Some(encoder),
        model,
    })
}
