//! `glm-agent serve`: the settings resolved, the port bound, the engine opened, and
//! [`glm_serve`] run until Ctrl-C or SIGTERM. Everything a request does lives in that crate.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use glm_agent::engine::Engine;
use glm_agent::exit::ExitStatus;

use crate::cli::{CmdResult, Failure};
use crate::config::{Config, EngineSettings, SamplingSettings, ServeSettings};
use crate::engine_opts::{EngineSpec, Resolved, resolve};
use crate::setup::CommonOptions;

pub use glm_serve::replay_serve_trace;

/// Options of `serve`.
#[derive(Debug, Args)]
#[command(
    // serve always loads the model it serves: reusing another serve's is for run and chat.
    mut_arg("use_serve", |a| a.hide(true)),
    after_help = "Endpoints: GET /v1/models, POST /v1/chat/completions (messages, tools, \
tool_choice auto/none/required/a named function, response_format, stream), POST /v1/responses \
(the Responses API: input items, function tools, text.format, previous_response_id, stream), \
POST /v1/completions (a raw prompt: text with control tokens spelled out, or token ids), \
POST /tokenize, GET /health.\n\n\
Every setting but the key can also be set in config.toml (`port = 9000`).\n\n\
Examples:\n  glm-agent serve --model ~/models/glm-4-9b-chat-1m-hf\n  \
glm-agent serve --engine openai:http://gpu-box:8000 --tokenizer tokenizer.json --port 9000\n  \
GLM_AGENT_API_KEY=secret glm-agent serve --host 0.0.0.0"
)]
pub struct ServeArgs {
    #[command(flatten)]
    engine: EngineSettings,
    #[command(flatten)]
    sampling: SamplingSettings,
    #[command(flatten)]
    serve: ServeSettings,
    #[command(flatten)]
    common: CommonOptions,
    /// Require `Authorization: Bearer KEY` on every request.
    #[arg(
        long,
        env = "GLM_AGENT_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Option<String>,
    /// Listen on an address other than loopback without an API key.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Write one trace per request into DIR (`glm-agent replay` reads them).
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> CmdResult {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        Failure::new(
            ExitStatus::Unavailable,
            anyhow::anyhow!("cannot start the async runtime: {e}"),
        )
    })?;
    runtime.block_on(serve(args))
}

fn loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn serve(args: ServeArgs) -> CmdResult {
    let config = Config::load()?;
    let settings = config.resolve(&args.engine)?.value;
    let spec = settings.spec()?;
    let sampling = config.resolve(&args.sampling)?.value.sampling();
    let serve = config.resolve(&args.serve)?.value;
    // The concern's defaults fill both (`127.0.0.1`, 8000).
    let (Some(host), Some(port)) = (serve.host.clone(), serve.port) else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "serve needs --host and --port"
        )));
    };
    let api_key = args.api_key.clone().filter(|k| !k.is_empty());
    if !loopback(&host) && api_key.is_none() && !args.allow_unauthenticated {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--host {host} is reachable from other machines: set an API key (--api-key or GLM_AGENT_API_KEY), or pass --allow-unauthenticated to serve without one"
        )));
    }
    if let Some(dir) = &args.trace_dir {
        glm_agent::trace::private_dir(dir).map_err(|e| {
            Failure::bad_input(anyhow::anyhow!("--trace-dir {}: {e}", dir.display()))
        })?;
    }
    // Bind first: a taken port is reported before a model loads for minutes.
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| {
            Failure::new(
                ExitStatus::Unavailable,
                anyhow::anyhow!("cannot listen on {host}:{port}: {e}"),
            )
        })?;
    let address: SocketAddr = listener
        .local_addr()
        .map_err(|e| Failure::new(ExitStatus::Unavailable, anyhow::anyhow!("{e}")))?;
    // A server loads its model itself (it is what other commands find and use).
    let settings = EngineSettings {
        use_serve: Some(false),
        ..settings
    };
    let resolved = resolve(&settings, &args.common).await?;
    let model_dir = match &resolved {
        Resolved::Embedded { dir, .. } => Some(dir.clone()),
        Resolved::Remote => None,
    };
    let opened = resolved.open(&settings, &args.common, None).await?;
    let encoder = match &opened.encoder {
        Some(e) => e.clone(),
        None => crate::run::tokenizer_for(settings.model())?,
    };
    let mut options = glm_serve::Options::new(
        serve
            .served_model_name
            .clone()
            .unwrap_or_else(|| served_name(settings.model(), &spec)),
    );
    // Unset, each keeps `Options::new`'s default (which the concern's defaults read too).
    options.api_key = api_key;
    options.max_queue = serve.max_queue.unwrap_or(options.max_queue);
    options.default_max_tokens = serve
        .default_max_tokens
        .unwrap_or(options.default_max_tokens);
    options.remember = serve.remember.unwrap_or(options.remember);
    options.store_responses = serve.store_responses.unwrap_or(options.store_responses);
    options.max_model_len = serve.max_model_len;
    options.trace_dir = args.trace_dir.clone();
    options.model_info = opened.model.clone();
    options.sampling = sampling;
    if let Some(n) = serve.max_connections {
        options.limits.max_connections = n;
    }
    if let Some(mib) = serve.max_body_mib {
        options.limits.max_body = mib << 20;
    }
    options.log = Arc::new(|line| eprintln!("{line}"));
    let engine: Arc<dyn Engine> = Arc::from(opened.engine);
    let server = glm_serve::Server::new(engine, encoder, options);
    eprintln!(
        "Serving {} on http://{address}/v1 ({}; Ctrl-C stops)",
        server.options().model_name,
        server.describe()
    );
    let _registration =
        model_dir.and_then(|dir| register(address, dir, server.options().api_key.is_some()));
    glm_serve::serve(listener, server, crate::run::interrupted())
        .await
        .map_err(|e| {
            Failure::new(
                ExitStatus::Unavailable,
                anyhow::anyhow!("serve failed: {e}"),
            )
        })?;
    eprintln!("Stopped.");
    Ok(())
}

/// Says that this server holds the model in `dir`, so `run`, `chat` and `eval` of the same
/// model on this machine use it; the file goes when the server stops.
fn register(address: SocketAddr, dir: PathBuf, keyed: bool) -> Option<crate::shared::Registration> {
    let host = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    crate::shared::register(&crate::shared::Record {
        pid: std::process::id(),
        base: format!("http://{host}/v1"),
        model_dir: dir.canonicalize().unwrap_or(dir),
        keyed,
    })
}

/// The name `/v1/models` lists: the last part of a folder path or repo id.
fn served_name(model: &str, engine: &EngineSpec) -> String {
    if matches!(engine, EngineSpec::Replay(_)) {
        return "replay".into();
    }
    let trimmed = model.trim_end_matches('/');
    if std::path::Path::new(trimmed).is_dir() {
        return std::path::Path::new(trimmed)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| trimmed.to_owned());
    }
    trimmed.to_owned()
}
