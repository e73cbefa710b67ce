//! `glm-agent generate`: raw generation from token ids, no chat template.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use futures::StreamExt;
use glm_agent::engine::{
    Engine, EngineEvent, GenerateRequest, OpenAiConfig, OpenAiEngine, ReplayEngine, Sampling,
};
use glm_agent::exit::ExitStatus;
use glm_prompts::{Encoder, SpecialToken};
use serde_json::json;

use super::{CmdResult, Failure, write_stdout};

/// Options of `generate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Engines: openai:URL (a vLLM or SGLang server serving GLM-4; key in \
OPENAI_API_KEY) or replay:FILE (a JSON array of recorded outputs).\n\n\
Examples:\n  glm-agent generate --engine openai:http://gpu-box:8000 --prompt-ids 151331,151333,151336,10,9703,151337 --greedy --json\n  \
glm-agent generate --engine replay:outputs.json --prompt-file prompt.json"
)]
pub struct GenerateArgs {
    /// The engine: openai:URL or replay:FILE.
    #[arg(long, value_name = "ENGINE")]
    engine: String,
    /// The served model's name (openai; default: the first the server lists).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Prompt token ids, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    prompt_ids: Vec<u32>,
    /// A file holding the prompt ids (a JSON array, or ids separated by commas or spaces).
    #[arg(long, value_name = "FILE")]
    prompt_file: Option<PathBuf>,
    /// The model's tokenizer.json: stop and control-token ids are read from it
    /// [default: GLM-4-9B's published ids].
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.8)]
    top_p: f32,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<u32>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Always take the most likely token.
    #[arg(long)]
    greedy: bool,
    /// Print one JSON object (ids, text, finish_reason, usage) instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> CmdResult {
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    runtime.block_on(generate(args))
}

async fn generate(args: GenerateArgs) -> CmdResult {
    let prompt = match &args.prompt_file {
        Some(path) => read_ids(path)?,
        None => args.prompt_ids.clone(),
    };
    let (control, stops) = match &args.tokenizer {
        Some(path) => {
            let encoder = Encoder::from_file(path).map_err(Failure::bad_input)?;
            let ids = encoder.special_ids();
            let control =
                [SpecialToken::GMask, SpecialToken::Sop, SpecialToken::User].map(|t| ids.id(t));
            (control, ids.stop_ids())
        }
        None => (
            [SpecialToken::GMask, SpecialToken::Sop, SpecialToken::User]
                .map(SpecialToken::glm4_9b_id),
            SpecialToken::STOPS.iter().map(|t| t.glm4_9b_id()).collect(),
        ),
    };
    let engine = open_engine(&args, control).await?;
    let request = GenerateRequest {
        prompt,
        sampling: Sampling {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            seed: args.seed,
            greedy: args.greedy,
        },
        max_new_tokens: args.max_tokens,
        stop_ids: stops,
    };
    let engine_failed = |e: glm_agent::engine::EngineError| Failure::new(ExitStatus::Engine, e);
    if args.json {
        let out = engine.collect(request).await.map_err(engine_failed)?;
        let value = json!({
            "ids": out.ids, "text": out.text, "finish_reason": out.reason, "usage": out.usage,
        });
        return write_stdout(format!("{value}\n").as_bytes());
    }
    let mut stream = engine.generate(request);
    while let Some(event) = stream.next().await {
        match event.map_err(engine_failed)? {
            EngineEvent::Delta { text, .. } => {
                write_stdout(text.as_bytes())?;
            }
            EngineEvent::Finished { .. } => {
                let _ = std::io::stdout().flush();
            }
        }
    }
    write_stdout(b"\n")
}

async fn open_engine(args: &GenerateArgs, control: [u32; 3]) -> Result<Box<dyn Engine>, Failure> {
    let (kind, target) = args
        .engine
        .split_once(':')
        .unwrap_or((args.engine.as_str(), ""));
    match kind {
        "openai" if !target.is_empty() => {
            let config = OpenAiConfig {
                model: args.model.clone(),
                api_key: std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                ..OpenAiConfig::new(target)
            };
            let engine = OpenAiEngine::connect(config, control)
                .await
                .map_err(|e| Failure::new(ExitStatus::Engine, e))?;
            Ok(Box::new(engine))
        }
        "replay" if !target.is_empty() => {
            let text = std::fs::read_to_string(target)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("cannot read {target}: {e}")))?;
            let engine = ReplayEngine::from_json(&text).map_err(Failure::bad_input)?;
            Ok(Box::new(engine))
        }
        _ => Err(Failure::bad_input(anyhow::anyhow!(
            "--engine {}: use openai:URL (an OpenAI-compatible server) or replay:FILE",
            args.engine
        ))),
    }
}

fn read_ids(path: &std::path::Path) -> Result<Vec<u32>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("cannot read {}: {e}", path.display())))?;
    if let Ok(ids) = serde_json::from_str::<Vec<u32>>(&text) {
        return Ok(ids);
    }
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                Failure::bad_input(anyhow::anyhow!(
                    "{}: `{s}` is not a token id",
                    path.display()
                ))
            })
        })
        .collect()
}
