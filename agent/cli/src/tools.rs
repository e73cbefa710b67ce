//! `glm-agent tools list|call`: the tools outside the agent loop.

use clap::{Args, Subcommand};
use glm_agent::exit::ExitStatus;
use glm_prompts::{Parsed, ToolKind, parse};
use glm_tools::builtins::builtin_registry;
use glm_tools::{ToolContext, ToolRegistry};

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, ToolSettings};
use crate::mcp::McpFlags;
use crate::setup::{CommonOptions, show_progress};
use crate::workdir::WorkDirOptions;

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// List every tool with its description and parameter schema.
    #[command(after_help = "Examples:\n  glm-agent tools list\n  glm-agent tools list --json")]
    List {
        /// Print one JSON array instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        options: ToolOptions,
    },
    /// Run tool calls and print each observation exactly as the model would see it.
    #[command(
        after_help = "ARGS is what the model writes after the tool name: JSON for function \
tools, a call for simple_browser, code for python. `-` reads ARGS from stdin. Several ARGS are \
several calls to one instance of the tool, in order, as in one run (the browser's numbering and \
the notebook's state carry over). Files python writes go to a fresh temporary folder.\n\n\
Exit status: 0 every call succeeded, 1 a call reported an error (printed as the model sees it), \
2 bad usage.\n\n\
Examples:\n  glm-agent tools call python 'print(1 + 1)'\n  \
glm-agent tools call simple_browser 'search(\"rust wasm\", recency_days=30)'\n  \
glm-agent tools call simple_browser 'open_url(\"http://127.0.0.1:8000/\")' --allow-host 127.0.0.1"
    )]
    Call {
        /// The tool's name.
        name: String,
        /// The arguments as the model would write them; several for several calls.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
        #[command(flatten)]
        options: ToolOptions,
    },
}

/// Settings shared by the tool commands.
#[derive(Debug, Args)]
pub struct ToolOptions {
    #[command(flatten)]
    tools: ToolSettings,
    #[command(flatten)]
    mcp: McpFlags,
    /// Seconds one tool call may take (the python tool's own cell deadline is 60 s).
    #[arg(long, default_value_t = 90, value_name = "SECONDS")]
    tool_timeout: u64,
    #[command(flatten)]
    work: WorkDirOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl ToolOptions {
    /// The tools with the effective settings, and the MCP servers started for them: those
    /// `tools` offers for a list; for a call, every built-in, or the one server `name` belongs
    /// to.
    async fn registry(
        &self,
        call: Option<&str>,
    ) -> Result<(ToolRegistry, glm_tools::mcp::McpServers), Failure> {
        let config = Config::load()?;
        let layered = config.resolve(&self.tools)?;
        let settings = &layered.value;
        let options =
            settings.builtin_options(self.common.cache()?, self.common.downloads_off())?;
        let servers = crate::mcp::configured(&config, &self.mcp)?;
        let offered = match call {
            None => crate::mcp::offered(&layered, servers)?,
            Some(name) => crate::mcp::Offered {
                builtins: Vec::new(),
                servers: servers
                    .into_iter()
                    .filter(|(server, _)| {
                        name.strip_prefix(server.as_str())
                            .is_some_and(|rest| rest.starts_with(glm_tools::mcp::SEPARATOR))
                    })
                    .collect(),
            },
        };
        let names: Vec<&str> = offered.builtins.iter().map(String::as_str).collect();
        let mut registry = if call.is_none() && names.is_empty() {
            ToolRegistry::new()
        } else {
            builtin_registry(&options, &names).map_err(Failure::bad_input)?
        };
        let servers = crate::mcp::start(offered.servers).await?;
        crate::mcp::register(&servers, &mut registry);
        Ok((registry, servers))
    }
}

pub fn run(command: ToolsCommand) -> CmdResult {
    match command {
        ToolsCommand::List { json, options } => {
            // Listing runs nothing long: one thread drives the servers' start and shutdown.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Failure::bad_input)?;
            let (registry, servers) = runtime.block_on(options.registry(None))?;
            runtime.block_on(servers.shutdown());
            list(&registry, json)
        }
        ToolsCommand::Call {
            name,
            args,
            options,
        } => {
            let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
            call(&runtime, &options, &name, args)
        }
    }
}

fn list(registry: &ToolRegistry, json: bool) -> CmdResult {
    let declared = registry.declared();
    // How the model (and `tools call`) writes a built-in's arguments, which are not JSON.
    let syntax = |name: &str| {
        match declared.kind(name) {
        Some(ToolKind::Python) => Some("Python code (a cell of the notebook)".to_owned()),
        Some(ToolKind::SimpleBrowser) => Some(
            "one of search(\"query\", recency_days=N), mclick([id, ...]), open_url(\"https://...\")"
                .to_owned(),
        ),
        Some(ToolKind::Function) | None => None,
    }
    };
    let infos = registry.describe();
    let text = if json {
        let infos: Vec<serde_json::Value> = infos
            .iter()
            .map(|info| {
                let mut value = serde_json::to_value(info).unwrap_or_default();
                if let (Some(syntax), Some(map)) = (syntax(&info.name), value.as_object_mut()) {
                    map.insert("arguments".into(), syntax.into());
                }
                value
            })
            .collect();
        serde_json::to_string_pretty(&infos).map_err(Failure::bad_input)? + "\n"
    } else {
        let mut out = String::new();
        for info in infos {
            let how = match syntax(&info.name) {
                Some(syntax) => format!("arguments: {syntax}"),
                None => format!(
                    "parameters: {}",
                    glm_prompts::pyjson::dumps(&info.parameters)
                ),
            };
            // What `--approval ask` does with its calls.
            let approval = if info.read_only {
                "read-only: runs without asking"
            } else {
                "can change things: asked about under --approval ask"
            };
            out.push_str(&format!(
                "{}\n  {}\n  {how}\n  {approval}\n\n",
                info.name, info.description
            ));
        }
        out
    };
    write_stdout(text.as_bytes())
}

fn call(
    runtime: &tokio::runtime::Runtime,
    options: &ToolOptions,
    name: &str,
    args: Vec<String>,
) -> CmdResult {
    let (registry, servers) = runtime.block_on(options.registry(Some(name)))?;
    let result = call_with(runtime, &registry, options, name, args);
    runtime.block_on(servers.shutdown());
    result
}

fn call_with(
    runtime: &tokio::runtime::Runtime,
    registry: &ToolRegistry,
    options: &ToolOptions,
    name: &str,
    args: Vec<String>,
) -> CmdResult {
    let mut declared = registry.declared();
    if declared.kind(name).is_none() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "unknown tool `{name}`; available: {}",
            registry.names().join(", ")
        )));
    }
    if name == "python" {
        // Install on first use, with progress, before the call's time limit starts.
        let (cache, offline) = (options.common.cache()?, options.common.downloads_off());
        runtime
            .block_on(glm_tools::python::setup(&cache, offline, &show_progress))
            .map_err(Failure::bad_input)?;
    }
    // Files the calls write (python's /mnt/data) go to a fresh private folder.
    let work = options.work.open("tools-call")?;
    let ctx = ToolContext {
        timeout: std::time::Duration::from_secs(options.tool_timeout),
        ..ToolContext::new(work.path())
    };
    // Ctrl-C or SIGTERM cancels the call in progress (an MCP server is told), then the
    // servers close.
    let cancel = ctx.cancel.clone();
    runtime.spawn(async move {
        crate::run::interrupted().await;
        cancel.cancel();
    });
    let count = args.len();
    let mut all_ok = true;
    for (i, args) in args.into_iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if runtime.block_on(registry.refresh()) {
            declared = registry.declared();
        }
        let args = if args == "-" {
            crate::cli::read_stdin()?
        } else {
            args
        };
        let (text, ok) = match parse(&format!("{name}\n{args}"), &declared) {
            Parsed::Call(call) => match runtime.block_on(registry.call(&call, &ctx)) {
                Ok(output) => {
                    let files: Vec<_> = output.observations.iter().flat_map(|o| &o.files).collect();
                    if work.keeps() {
                        for file in &files {
                            eprintln!("wrote {}", file.display());
                        }
                    } else if !files.is_empty() {
                        eprintln!(
                            "({} file(s) written, removed at the end: pass --keep-files to keep them)",
                            files.len()
                        );
                    }
                    (output.text(), true)
                }
                Err(e) => (e.to_message().content, false),
            },
            Parsed::Malformed(bad) => (format!("Error: {}", bad.reason), false),
            Parsed::Answer(_) => (format!("Error: `{name}` needs arguments"), false),
        };
        all_ok &= ok;
        let heading = if count > 1 {
            format!("[call {} of {count}]\n", i + 1)
        } else {
            String::new()
        };
        write_stdout(format!("{heading}{text}\n").as_bytes())?;
    }
    if all_ok {
        Ok(())
    } else {
        Err(Failure::silent(ExitStatus::ToolFailed))
    }
}
