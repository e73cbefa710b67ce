//! `glm-agent replay`: re-run a recorded run and report where it diverges.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use glm_agent::exit::ExitStatus;
use glm_agent::replay::replay;
use glm_agent::trace::Trace;
use glm_prompts::Encoder;
use glm_tools::ToolRegistry;
use glm_tools::builtins::builtin_registry;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, ToolSettings};
use crate::setup::CommonOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tools {
    /// Feed the recorded observations back.
    Recorded,
    /// Run the tools again (built-in tools only) and compare what they return.
    Live,
}

/// Options of `replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "The model's outputs come from the trace; today's renderer, parser, loop \
and (with --tools live) tools rebuild the run, and every prompt is compared with the recorded \
one. Exit codes: 0 nothing diverged, 1 a divergence (the first is shown), 2 bad input.\n\n\
Examples:\n  glm-agent replay ~/.local/state/glm-agent/traces/run-1764331200000-4242.jsonl --model ~/models/glm-4-9b-chat-1m-hf\n  \
glm-agent replay evals/traces/python_call.jsonl --tokenizer evals/traces/tokenizer.json --tools live"
)]
pub struct ReplayArgs {
    /// The trace to replay.
    trace: PathBuf,
    /// Where observations come from.
    #[arg(long, value_enum, default_value = "recorded")]
    tools: Tools,
    /// The model's tokenizer.json, to rebuild prompts [default: the recorded model folder's,
    /// when it is still there with the same sha256].
    #[arg(long, value_name = "PATH", conflicts_with = "model")]
    tokenizer: Option<PathBuf>,
    /// A local model folder (its tokenizer.json is used).
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// A private host the browser may reach in a live replay (repeatable) [config: allow_host].
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_host: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonOptions,
}

pub fn run(args: ReplayArgs) -> CmdResult {
    let trace = Trace::read(&args.trace).map_err(Failure::bad_input)?;
    let tokenizer = match (&args.tokenizer, &args.model) {
        (Some(t), _) => t.clone(),
        (None, Some(m)) => m.join("tokenizer.json"),
        (None, None) => match trace.recorded_tokenizer() {
            Ok(path) => {
                eprintln!(
                    "tokenizer: {} (the recorded model's; its sha256 matches)",
                    path.display()
                );
                path
            }
            Err(why) => {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "replay rebuilds prompts with the model's tokenizer, and the recorded one \
                     cannot be used: {why}; pass --tokenizer PATH or --model FOLDER"
                )));
            }
        },
    };
    let encoder = Encoder::from_file(&tokenizer).map_err(Failure::bad_input)?;
    if let Some(found) = crate::serve::replay_serve_trace(&trace, &encoder)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?
    {
        return report_serve(&args, found.divergences);
    }
    let live = live_tools(&args, &trace)?;
    let work = crate::workdir::WorkDir::new("replay", None, false)?;
    let workdir = work.path().to_path_buf();
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    let report = runtime
        .block_on(replay(&trace, encoder, live, &workdir))
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    if args.json {
        let value = serde_json::json!({
            "recorded_steps": report.recorded_steps,
            "replayed_steps": report.replayed_steps,
            "divergences": report.divergences,
            "end": report.outcome.end,
        });
        write_stdout(format!("{value}\n").as_bytes())?;
    } else if let Some(first) = report.divergences.first() {
        write_stdout(
            format!(
                "diverged at step {}: {}\n{}\n({} divergence(s); {} recorded model turns, {} replayed)\n",
                first.step,
                first.what,
                first.diff,
                report.divergences.len(),
                report.recorded_steps,
                report.replayed_steps
            )
            .as_bytes(),
        )?;
    } else {
        write_stdout(
            format!(
                "no divergence: {} model turns replayed, every prompt identical\n",
                report.replayed_steps
            )
            .as_bytes(),
        )?;
    }
    if report.divergences.is_empty() {
        Ok(())
    } else {
        Err(Failure::silent(ExitStatus::Mismatch))
    }
}

/// The built-in tools the trace's run offered, for `--tools live`; `None` for recorded.
fn live_tools(args: &ReplayArgs, trace: &Trace) -> Result<Option<ToolRegistry>, Failure> {
    if matches!(args.tools, Tools::Recorded) {
        return Ok(None);
    }
    let flags = ToolSettings {
        allow_host: (!args.allow_host.is_empty()).then(|| args.allow_host.clone()),
        ..ToolSettings::default()
    };
    let settings = Config::load()?.resolve(&flags)?.value;
    let options = settings.builtin_options(args.common.cache()?, args.common.downloads_off())?;
    let names: Vec<String> = trace
        .events
        .iter()
        .find_map(|e| match e {
            glm_agent::Event::Start { tools, .. } => Some(
                tools
                    .iter()
                    .filter_map(|t| {
                        serde_json::from_value::<glm_prompts::ToolSpec>(t.clone())
                            .ok()
                            .map(|s| s.name().to_owned())
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    builtin_registry(&options, &names).map(Some).map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "{e}; a live replay can run only the built-in tools (use --tools recorded)"
        ))
    })
}

/// The report of a server trace's replay: one request, one model turn.
fn report_serve(args: &ReplayArgs, divergences: Vec<glm_agent::replay::Divergence>) -> CmdResult {
    if args.json {
        let value = serde_json::json!({
            "recorded_steps": 1, "replayed_steps": 1, "divergences": divergences,
        });
        write_stdout(format!("{value}\n").as_bytes())?;
    } else if let Some(first) = divergences.first() {
        write_stdout(
            format!(
                "diverged: {}\n{}\n({} divergence(s) in the server request)\n",
                first.what,
                first.diff,
                divergences.len()
            )
            .as_bytes(),
        )?;
    } else {
        write_stdout(
            b"no divergence: the server request renders to the recorded prompt and its output reads as the recorded answer\n",
        )?;
    }
    if divergences.is_empty() {
        Ok(())
    } else {
        Err(Failure::silent(ExitStatus::Mismatch))
    }
}
