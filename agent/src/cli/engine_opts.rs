//! Engine options shared by the commands that generate: which engine, which model, how to load.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use glm_agent::agent::trace::Trace;
use glm_agent::engine::{
    EmbeddedConfig, EmbeddedEngine, Engine, Isq, OpenAiConfig, OpenAiEngine, ReplayEngine,
};
use glm_agent::exit::ExitStatus;
use glm_agent::model::hub::{DEFAULT_MODEL, locate};
use glm_agent::model::{Layout, prepare};
use glm_prompts::{Encoder, SpecialIds, SpecialToken};

use super::Failure;
use super::setup::CommonOptions;

/// Which engine and model to use.
#[derive(Debug, Clone, Args)]
pub struct EngineOptions {
    /// The engine: `embedded` (mistral.rs in this process), `openai:URL` (a vLLM or SGLang
    /// server; key in OPENAI_API_KEY) or `replay:FILE` (recorded outputs).
    #[arg(long, value_name = "ENGINE", default_value = "embedded")]
    pub engine: String,
    /// The model: a local folder or a Hugging Face repo id (embedded), or the served model's
    /// name (openai) [default: THUDM/glm-4-9b-chat-1m-hf].
    #[arg(long, value_name = "PATH_OR_ID")]
    pub model: Option<String>,
    /// Quantisation at load (embedded): auto (q4k on CPU when f32 does not fit in memory),
    /// none, q4k, q8_0, q4_0, q5k, q6k, ...
    #[arg(long, value_name = "Q", default_value = "auto")]
    pub isq: String,
    /// Turn mistral.rs's prefix cache off (embedded).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// The model's tokenizer.json, for openai and replay engines: stop and control-token ids
    /// are read from it [default: GLM-4-9B's published ids].
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
}

/// An opened engine and the ids of its model's control tokens.
pub struct Opened {
    /// The engine.
    pub engine: Box<dyn Engine>,
    /// Control-token ids from the model's tokenizer.
    pub ids: SpecialIds,
    /// The tokenizer, when one was read.
    pub encoder: Option<Encoder>,
    /// Which model, for traces.
    pub model: serde_json::Value,
}

fn engine_failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(ExitStatus::Engine, e)
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
        .map_err(Failure::bad_input)?;
    let started = Instant::now();
    let prepared =
        prepare(&source, &common.cache(), &mut show_map_progress()).map_err(Failure::bad_input)?;
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

impl EngineOptions {
    /// Opens the engine.
    pub async fn open(&self, common: &CommonOptions) -> Result<Opened, Failure> {
        let (kind, target) = self
            .engine
            .split_once(':')
            .unwrap_or((self.engine.as_str(), ""));
        match kind {
            "embedded" if target.is_empty() => self.open_embedded(common).await,
            "openai" if !target.is_empty() => {
                let (ids, encoder) = self.ids_from_flag()?;
                let config = OpenAiConfig {
                    model: self.model.clone(),
                    api_key: std::env::var("OPENAI_API_KEY")
                        .ok()
                        .filter(|k| !k.is_empty()),
                    ..OpenAiConfig::new(target)
                };
                let control =
                    [SpecialToken::GMask, SpecialToken::Sop, SpecialToken::User].map(|t| ids.id(t));
                let engine = OpenAiEngine::connect(config, control)
                    .await
                    .map_err(engine_failed)?;
                let model = serde_json::json!({"server": target, "engine": engine.describe()});
                Ok(Opened {
                    engine: Box::new(engine),
                    ids,
                    encoder,
                    model,
                })
            }
            "replay" if !target.is_empty() => {
                let (ids, encoder) = self.ids_from_flag()?;
                let text = std::fs::read_to_string(target).map_err(|e| {
                    Failure::bad_input(anyhow::anyhow!("cannot read {target}: {e}"))
                })?;
                // A JSON array of outputs, or a trace (JSON lines).
                let engine = if text.trim_start().starts_with('[') {
                    ReplayEngine::from_json(&text).map_err(Failure::bad_input)?
                } else {
                    Trace::read(std::path::Path::new(target))
                        .map_err(Failure::bad_input)?
                        .replay_engine()
                };
                Ok(Opened {
                    engine: Box::new(engine),
                    ids,
                    encoder,
                    model: serde_json::json!({"replay": target}),
                })
            }
            _ => Err(Failure::bad_input(anyhow::anyhow!(
                "--engine {}: use embedded, openai:URL (an OpenAI-compatible server) or replay:FILE",
                self.engine
            ))),
        }
    }

    fn ids_from_flag(&self) -> Result<(SpecialIds, Option<Encoder>), Failure> {
        match &self.tokenizer {
            Some(path) => {
                let encoder = Encoder::from_file(path).map_err(Failure::bad_input)?;
                Ok((*encoder.special_ids(), Some(encoder)))
            }
            None => Ok((SpecialIds::glm4_9b(), None)),
        }
    }

    async fn open_embedded(&self, common: &CommonOptions) -> Result<Opened, Failure> {
        let isq: Isq = self
            .isq
            .parse()
            .map_err(|e: String| Failure::bad_input(anyhow::anyhow!("--isq: {e}")))?;
        let spec = self.model.as_deref().unwrap_or(DEFAULT_MODEL);
        let dir = resolve_model(spec, common).await?;
        let encoder =
            Encoder::from_file(&dir.join("tokenizer.json")).map_err(Failure::bad_input)?;
        let ids = *encoder.special_ids();
        eprintln!(
            "Loading {spec} on mistral.rs (quantising a 9B model the first time takes minutes; the result is saved)..."
        );
        let config = EmbeddedConfig {
            isq,
            prefix_cache: !self.no_prefix_cache,
            work_dir: common.cache().join("engine"),
            // mistral.rs's loading steps and quantisation progress bars, on a terminal.
            verbose: std::io::stderr().is_terminal(),
            ..EmbeddedConfig::new(&dir)
        };
        let engine = EmbeddedEngine::load(config).await.map_err(engine_failed)?;
        let report = engine.report();
        eprintln!(
            "Loaded in {:.1} s ({}{})",
            report.took.as_secs_f64(),
            report.reason,
            if report.from_saved {
                ", quantised weights read from the saved copy"
            } else {
                ""
            }
        );
        let mut model = glm_agent::model::fingerprint(&dir);
        model["id"] = spec.into();
        Ok(Opened {
            engine: Box::new(engine),
            ids,
            encoder: Some(encoder),
            model,
        })
    }
}
