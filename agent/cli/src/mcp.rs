//! MCP servers for a command: `[mcp_servers.NAME]` tables and `--mcp` flags, which of their
//! tools `--tools` offers, and starting them.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Args;
use glm_tools::builtins::BUILTIN_TOOLS;
use glm_tools::mcp::{McpServerConfig, McpServers, SEPARATOR, parse_flag, valid_server_name};

use crate::cli::Failure;
use crate::config::{Config, ToolSettings};
use crate::settings::{Layered, Source};

/// The `--mcp` flag.
#[derive(Debug, Clone, Default, Args)]
pub struct McpFlags {
    /// An MCP server for this run: NAME=COMMAND ARGS... (one argument, split as a shell would;
    /// leading KEY=VALUE words are its environment) or NAME=URL (streamable HTTP); repeatable. Its tools are offered as NAME__TOOL. Adds to
    /// (or replaces, by name) the config file's [mcp_servers.NAME] tables
    #[arg(long = "mcp", value_name = "NAME=[KEY=VALUE...] COMMAND|URL")]
    pub mcp: Vec<String>,
}

/// What a command offers: the built-in tools by name, and the servers to start (each with
/// its allow-list).
#[derive(Debug, Default)]
pub struct Offered {
    /// Built-in tools.
    pub builtins: Vec<String>,
    /// Servers and their settings.
    pub servers: Vec<(String, McpServerConfig)>,
}

/// The servers the config file and `flags` name, by name.
pub fn configured(
    config: &Config,
    flags: &McpFlags,
) -> Result<BTreeMap<String, McpServerConfig>, Failure> {
    let mut servers: BTreeMap<String, McpServerConfig> = config.mcp_servers()?.unwrap_or_default();
    for name in servers.keys() {
        if !valid_server_name(name) {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "[mcp_servers.{name}]: a server's name is letters, digits, `-` and `_` (no `__`)"
            )));
        }
    }
    for flag in &flags.mcp {
        let (name, config) =
            parse_flag(flag).map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
        servers.insert(name, config);
    }
    Ok(servers)
}

/// Which tools `--tools` offers. Left at its default, every built-in and every server; set,
/// each entry names a built-in, a whole server (`NAME`) or one of its tools (`NAME__TOOL`).
pub fn offered(
    tools: &Layered<ToolSettings>,
    mut servers: BTreeMap<String, McpServerConfig>,
) -> Result<Offered, Failure> {
    let names = tools.value.names();
    if tools.sources.get("tools") == Some(&Source::Default) {
        return Ok(Offered {
            builtins: names.iter().map(|n| (*n).to_owned()).collect(),
            servers: servers.into_iter().collect(),
        });
    }
    let mut offered = Offered::default();
    // For each server named: `None` for all its tools, else the ones named.
    let mut chosen: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    for name in names {
        if BUILTIN_TOOLS.contains(&name) {
            offered.builtins.push(name.to_owned());
        } else if servers.contains_key(name) {
            chosen.insert(name.to_owned(), None);
        } else if let Some((server, tool)) = name.split_once(SEPARATOR)
            && servers.contains_key(server)
        {
            if let Some(list) = chosen.entry(server.to_owned()).or_insert(Some(Vec::new())) {
                list.push(tool.to_owned());
            }
        } else {
            let mut available: Vec<String> =
                BUILTIN_TOOLS.iter().map(|t| (*t).to_owned()).collect();
            available.extend(servers.keys().map(|s| format!("{s} (an MCP server)")));
            return Err(Failure::bad_input(anyhow::anyhow!(
                "unknown tool `{name}`; available: {} (or SERVER{SEPARATOR}TOOL)",
                available.join(", ")
            )));
        }
    }
    for (name, tools) in chosen {
        let Some(mut config) = servers.remove(&name) else {
            continue;
        };
        if let Some(named) = tools {
            config.tools = Some(match config.tools.take() {
                // The config's own allow-list still holds.
                Some(allowed) => named.into_iter().filter(|t| allowed.contains(t)).collect(),
                None => named,
            });
        }
        offered.servers.push((name, config));
    }
    Ok(offered)
}

/// Starts `servers`, telling the user as it goes; warnings go to stderr.
pub async fn start(servers: Vec<(String, McpServerConfig)>) -> Result<McpServers, Failure> {
    if servers.is_empty() {
        return Ok(McpServers::default());
    }
    let names: Vec<&str> = servers.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!("starting MCP servers: {}", names.join(", "));
    let warn: glm_tools::mcp::Warn = Arc::new(|message: &str| eprintln!("warning: {message}"));
    // Ctrl-C or SIGTERM while servers start: every one started so far goes with its process
    // group (dropping the start does that), then the command ends.
    tokio::select! {
        started = McpServers::start(servers, warn) => started.map_err(Failure::bad_input),
        () = crate::run::interrupted() => Err(Failure::new(
            glm_agent::exit::ExitStatus::Interrupted,
            anyhow::anyhow!("interrupted while MCP servers were starting; they are stopped"),
        )),
    }
}

/// Adds the servers' tools to `registry`.
pub fn register(servers: &McpServers, registry: &mut glm_tools::ToolRegistry) {
    for server in servers.servers() {
        registry.add_source(server.clone());
    }
}
