//! `glm-agent generate`: raw generation from token ids, no chat template.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use futures::StreamExt;
use glm_agent::engine::{EngineEvent, GenerateRequest, Sampling};
use glm_agent::exit::ExitStatus;
use serde_json::json;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, EngineSettings, SamplingSettings};
use crate::engine_opts::open;
use crate::setup::CommonOptions;

/// Options of `generate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Engines: embedded (the default: mistral.rs in this process, with --model a local \
folder or a Hugging Face repo id), openai:URL (a server serving GLM-4: vLLM, SGLang, llama.cpp's \
llama-server or glm-agent serve; key in OPENAI_API_KEY) or replay:FILE (a JSON array of recorded outputs).\n\n\
Examples:\n  glm-agent generate --model ~/models/glm-4-9b-chat-1m-hf --prompt-ids 151331,151333,151336,10,9703,151337 --greedy --json\n  \
glm-agent generate --engine openai:http://gpu-box:8000 --prompt-file prompt.json\n  \
glm-agent generate --engine replay:outputs.json --prompt-file prompt.json"
)]
pub struct GenerateArgs {
    #[command(flatten)]
    engine: EngineSettings,
    #[command(flatten)]
    sampling: SamplingSettings,
    #[command(flatten)]
    common: CommonOptions,
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
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
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
    let config = Config::load()?;
    let settings = config.resolve(&args.engine)?.value;
    let sampling = config.resolve(&args.sampling)?.value.sampling();
    let opened = open(&settings, &args.common).await?;
    let engine = opened.engine;
    let stops = opened.ids.stop_ids();
    let request = GenerateRequest {
        prompt,
        sampling: Sampling {
            greedy: args.greedy || sampling.greedy,
            ..sampling
        },
        max_new_tokens: args.max_tokens,
        stop_ids: stops,
        starts_with: Vec::new(),
        structured: None,
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
            EngineEvent::IdsLost => {}
        }
    }
    write_stdout(b"\n")
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
