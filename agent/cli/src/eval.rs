//! `glm-agent eval`: run a suite and score it; `glm-agent eval score DIR`: score stored traces
//! again.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use glm_agent::Settings;
use glm_agent::engine::Sampling;
use glm_eval_runner::{
    BUILTIN_SUITES, CaseReport, EngineChoice, SuiteOptions, needle_cases, needle_grid, rescore,
    run_suite, table,
};
use glm_evals::case::{BuiltinScorer, Case, read_suite};
use glm_prompts::Encoder;
use glm_tools::builtins::BuiltinOptions;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, EngineSettings};
use crate::engine_opts::open;
use crate::setup::CommonOptions;

/// Options of `eval`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "SUITE is a JSON Lines file of cases or a built-in suite: function_calling \
(60 cases modelled on BFCL's simple, multiple and irrelevance categories), tool_use (python and \
simple_browser tasks over a fixture site served on 127.0.0.1), needle (long-context retrieval, \
generated for --lengths and --depths, with a grid report). --engine reference \
replays each case's reference outputs (no model); other engines and the model come from the flags, \
GLM_AGENT_* and the config file as for `run`. Exit codes: 0 every case passed, 1 some \
failed, 2 bad input, 4 engine failure.\n\n\
Examples:\n  glm-agent eval function_calling --model ~/models/glm-4-9b-chat-1m-hf\n  \
glm-agent eval function_calling --engine reference\n  \
glm-agent eval needle --lengths 8192,65536,1000000 --depths 0,0.5,1\n  glm-agent eval score eval-out/"
)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    /// The suite: a .jsonl file or a built-in suite's name.
    #[arg(required = true)]
    suite: Option<String>,
    #[command(flatten)]
    engine: EngineSettings,
    /// MCP servers whose tools join the built-ins of cases that run tools (only these: the
    /// config file's servers are not started for evals, so suites stay comparable).
    #[command(flatten)]
    mcp: crate::mcp::McpFlags,
    /// Where traces and the report go [default: ./eval-<suite>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Cases run at once (useful with a server that batches).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Needle suite: prompt lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "1024,4096,16384")]
    lengths: Vec<usize>,
    /// Needle suite: depths of the needle, 0 (start) to 1 (end).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    depths: Vec<f64>,
    /// The tokens a case's prompt and answer may take; a needle length beyond it is refused
    /// before any case runs [default: the model's window, on the embedded engine lowered to what
    /// memory holds of its keys and values]
    #[arg(long, value_name = "N")]
    context_tokens: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonOptions,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Convert the Berkeley Function Calling Leaderboard's data into a suite.
    #[command(
        after_help = "DATA is the data/ folder of the bfcl-eval package (pip install \
bfcl-eval; Apache-2.0), e.g. $(python3 -c 'import bfcl_eval, os; print(os.path.dirname(bfcl_eval.__file__))')/data. \
Questions come from BFCL_v<N>_<category>.json (the newest layout present), answers from \
possible_answer/ beside them. Categories: simple_python (or simple), simple_java, \
simple_javascript, multiple, parallel, parallel_multiple, live_simple, live_multiple, \
live_parallel, live_parallel_multiple, irrelevance, live_irrelevance, live_relevance. Cases are \
judged as BFCL's AST checker judges them; in parallel categories every call the model makes \
is answered \"The call was recorded.\" and collected until it answers (at most the expected \
calls plus two turns). Java and JavaScript questions are counted as skipped.\n\n\
Example:\n  glm-agent eval convert-bfcl ~/venv/lib/python3.12/site-packages/bfcl_eval/data --out bfcl.jsonl\n  \
glm-agent eval bfcl.jsonl --model ~/models/glm-4-9b-chat-1m-hf"
    )]
    ConvertBfcl {
        /// The bfcl-eval data folder.
        data: PathBuf,
        /// Categories to convert, by BFCL's names [default: every single-turn category].
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
        /// The suite file to write.
        #[arg(long, value_name = "FILE", default_value = "bfcl.jsonl")]
        out: PathBuf,
    },
    /// Score the traces of an earlier `eval` again with today's scorers.
    #[command(after_help = "Example:\n  glm-agent eval score eval-function_calling/")]
    Score {
        /// The folder `eval` wrote (cases.jsonl and one trace per case).
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn show(reports: &[CaseReport], json: bool) -> CmdResult {
    if json {
        let value = serde_json::to_string(reports).unwrap_or_default();
        write_stdout(format!("{value}\n").as_bytes())?;
    } else {
        write_stdout(table(reports).as_bytes())?;
    }
    if reports.iter().all(|r| r.pass) {
        Ok(())
    } else {
        Err(Failure::silent(glm_agent::exit::ExitStatus::Mismatch))
    }
}

fn convert_bfcl(data: &std::path::Path, categories: &[String], out: &std::path::Path) -> CmdResult {
    let bad = |m: String| Failure::bad_input(anyhow::anyhow!(m));
    let converted =
        glm_evals::bfcl::convert_folder(data, categories).map_err(|e| bad(e.to_string()))?;
    let mut lines = Vec::new();
    for c in &converted {
        let skipped: Vec<String> = c
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        eprintln!(
            "{:<24} {:>5} cases from {}{}",
            c.category,
            c.cases.len(),
            c.file,
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", skipped: {}", skipped.join(", "))
            }
        );
        lines.extend(
            c.cases
                .iter()
                .map(|c| serde_json::to_string(c).unwrap_or_default()),
        );
    }
    if lines.is_empty() {
        return Err(bad(format!(
            "{}: nothing to convert in the categories asked for",
            data.display()
        )));
    }
    std::fs::write(out, lines.join("\n") + "\n")
        .map_err(|e| bad(format!("{}: {e}", out.display())))?;
    eprintln!("wrote {} cases to {}", lines.len(), out.display());
    Ok(())
}

/// A suite by name or path: its name (for the default output folder) and its cases' text,
/// `None` for the generated needle suite.
fn suite_source(suite: &str) -> Result<(String, Option<String>), Failure> {
    if suite == "needle" {
        return Ok(("needle".to_owned(), None));
    }
    if let Some((n, t)) = BUILTIN_SUITES.iter().find(|(n, _)| *n == suite) {
        return Ok(((*n).to_owned(), Some((*t).to_owned())));
    }
    let text = std::fs::read_to_string(suite).map_err(|e| {
        let builtin: Vec<&str> = BUILTIN_SUITES.iter().map(|(n, _)| *n).collect();
        Failure::bad_input(anyhow::anyhow!(
            "{suite}: {e} (built-in suites: {}, needle)",
            builtin.join(", ")
        ))
    })?;
    let stem = std::path::Path::new(suite)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "suite".into());
    Ok((stem, Some(text)))
}

/// Opens the engine the settings name and runs `cases` on it (`None`: the needle suite,
/// generated with the engine's tokenizer).
async fn run_on_engine(
    args: &EvalArgs,
    cases: Option<Vec<Case>>,
    builtins: &BuiltinOptions,
    out: &std::path::Path,
) -> Result<Vec<CaseReport>, Failure> {
    let settings = Settings {
        sampling: Sampling {
            greedy: true,
            ..Sampling::default()
        },
        ..Settings::default()
    };
    let config = Config::load()?;
    let engine = config.resolve(&args.engine)?.value;
    let opened = if engine.spec()? == crate::engine_opts::EngineSpec::Reference {
        None
    } else {
        Some(open(&engine, &args.common).await?)
    };
    let encoder = match (&opened, &engine.tokenizer) {
        (Some(opened), _) => opened.encoder.clone().ok_or_else(|| {
            Failure::bad_input(anyhow::anyhow!(
                "this engine needs the model's tokenizer: pass --tokenizer PATH"
            ))
        })?,
        (None, Some(p)) => Encoder::from_file(p).map_err(Failure::bad_input)?,
        (None, None) => {
            Encoder::new(glm_prompts::tiny::tiny_tokenizer().map_err(Failure::bad_input)?)
                .map_err(Failure::bad_input)?
        }
    };
    let window = args.context_tokens.or_else(|| {
        opened
            .as_ref()
            .and_then(|o| o.model["context_window"].as_u64())
            .map(|n| n as usize)
    });
    let settings = Settings {
        context_tokens: window,
        ..settings
    };
    if cases.is_none()
        && let Some(window) = window
        && let Some(length) = args
            .lengths
            .iter()
            .find(|l| **l + glm_agent::context::MIN_ROOM > window)
    {
        let memory = opened
            .as_ref()
            .and_then(|o| o.model["kv_bytes_per_token"].as_u64())
            .map(|b| {
                format!(
                    "; its keys and values would take {} MiB at {length} tokens",
                    (b * *length as u64) >> 20
                )
            })
            .unwrap_or_default();
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--lengths: {length} tokens and the answer do not fit the {window}-token context window{memory}: run lengths up to {}, or set --context-tokens if the model and memory allow",
            window.saturating_sub(glm_agent::context::MIN_ROOM)
        )));
    }
    let cases = cases.unwrap_or_else(|| needle_cases(&encoder, &args.lengths, &args.depths));
    let choice = match &opened {
        Some(opened) => EngineChoice::Shared(opened.engine.as_ref()),
        None => EngineChoice::Reference,
    };
    let mut named = Vec::new();
    for flag in &args.mcp.mcp {
        named.push(
            glm_tools::mcp::parse_flag(flag).map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?,
        );
    }
    let servers = crate::mcp::start(named).await?;
    let sources: Vec<std::sync::Arc<dyn glm_tools::ToolSource>> = servers
        .servers()
        .iter()
        .map(|s| s.clone() as std::sync::Arc<dyn glm_tools::ToolSource>)
        .collect();
    let options = SuiteOptions {
        jobs: args.jobs,
        sources: &sources,
        ..SuiteOptions::new(&encoder, builtins, &settings, out)
    };
    let reports = run_suite(&cases, &choice, &options)
        .await
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)));
    servers.shutdown().await;
    reports
}

pub fn run(args: EvalArgs) -> CmdResult {
    let mut builtins = BuiltinOptions::new(args.common.cache()?);
    builtins.offline = args.common.downloads_off();
    match &args.command {
        Some(EvalCommand::ConvertBfcl {
            data,
            categories,
            out,
        }) => return convert_bfcl(data, categories, out),
        Some(EvalCommand::Score { dir, json }) => {
            let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
            let reports = runtime
                .block_on(rescore(dir, &builtins, &BuiltinScorer))
                .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
            return show(&reports, *json);
        }
        None => {}
    }
    let suite = args.suite.clone().unwrap_or_default();
    let (name, text) = suite_source(&suite)?;
    let cases = match &text {
        Some(text) => Some(
            read_suite(text).map_err(|e| Failure::bad_input(anyhow::anyhow!("{suite}: {e}")))?,
        ),
        None => None,
    };
    let needle = cases.is_none();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("eval-{name}")));
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    let reports = runtime.block_on(run_on_engine(&args, cases, &builtins, &out))?;
    if !args.json {
        eprintln!("traces and report.json in {}", out.display());
        if needle {
            write_stdout(needle_grid(&reports, &args.lengths, &args.depths).as_bytes())?;
        }
    }
    show(&reports, args.json)
}
