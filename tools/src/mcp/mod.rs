//! Tools from Model Context Protocol servers, offered to the model as `SERVER__TOOL`.
//!
//! Each configured server is started once per run ([`McpServers::start`], all in parallel):
//! a command spoken to over its stdin and stdout, or a streamable HTTP endpoint. Its tools join
//! the [`ToolRegistry`](crate::ToolRegistry) as a [`ToolSource`],
//! with descriptions and input schemas normalised like every tool's. A
//! `notifications/tools/list_changed` marks the list stale; the registry re-reads it before
//! the model's next turn. Calls that run past their limit or are interrupted send
//! `notifications/cancelled`; [`McpServers::shutdown`] closes every server at the end of the
//! run (a child that does not exit is killed with its whole process group).
//!
//! What a server says is not trusted: tool names that the model could not write on a call's
//! first line are left out, descriptions are cut, a list is capped at [`MAX_TOOLS`] tools,
//! messages are capped by the SDK (16 MiB a line or event), and files a result carries are
//! saved under names made here, never under a name the server gives.

mod config;
mod result;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, Implementation, PaginatedRequestParams,
    ProtocolVersion,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use tokio::io::AsyncReadExt;

pub use config::{McpServerConfig, McpTransport, parse_flag, valid_server_name};

use crate::error::ToolError;
use crate::registry::{BoxFuture, SourceTool, ToolSource};
use crate::schema::normalize;
use crate::tool::{ToolContext, ToolOutput};

/// What separates a server's name from its tool's in the name the model sees.
pub const SEPARATOR: &str = "__";
/// The most tools one server may offer; more are left out with a warning.
pub const MAX_TOOLS: usize = 256;
/// The most pages of a tool list read: a server whose cursor never ends is read this far.
pub const MAX_PAGES: usize = 32;
/// The longest a tool list may take to read again after the server says it changed.
pub const RELIST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most characters of a tool's description the model reads.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// The most bytes of a server's standard error kept for messages.
const STDERR_TAIL_BYTES: usize = 4_096;
/// How long a server is given to close before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Why a server cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Its configuration is wrong.
    #[error("MCP server `{name}`: {message}")]
    Config {
        /// The server.
        name: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// It did not start, or did not answer the handshake or the tool listing.
    #[error("MCP server `{name}` did not start: {message}{}", stderr_note(stderr))]
    Start {
        /// The server.
        name: String,
        /// What happened.
        message: String,
        /// The end of what it wrote on standard error.
        stderr: String,
    },
}

fn stderr_note(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\nits standard error ended with:\n{}", stderr.trim_end())
    }
}

/// The end of a child's standard error, bounded.
#[derive(Debug, Default, Clone)]
struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend(bytes);
        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail.drain(..excess);
    }

    fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// What the client does with what a server sends on its own: it notes list changes.
#[derive(Clone)]
struct Handler {
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.store(true, Ordering::SeqCst);
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("glm-agent", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

/// One running server and the tools it offers.
pub struct McpServer {
    name: String,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, Handler>>>,
    peer: rmcp::Peer<RoleClient>,
    allow: Option<Vec<String>>,
    timeout: Option<Duration>,
    changed: Arc<AtomicBool>,
    /// Its tools as last listed (original names), after the allow-list and the bounds.
    tools: RwLock<Vec<rmcp::model::Tool>>,
    stderr: StderrTail,
    /// The process group of a stdio server, until it has been shut down.
    group: Mutex<Option<u32>>,
    /// Calls made, for naming the files results carry.
    calls: AtomicUsize,
    warn: Warn,
}

/// Where warnings go (a server left out, a tool left out).
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The servers of one run. Dropped without [`McpServers::shutdown`] (an error path, a panic),
/// it kills the stdio servers' process groups at once.
#[derive(Debug, Default)]
pub struct McpServers {
    servers: Vec<Arc<McpServer>>,
}

impl Drop for McpServers {
    fn drop(&mut self) {
        self.kill();
    }
}

impl McpServers {
    /// Starts every server in parallel: handshake, then the tool list. A server that fails is
    /// an error naming it, unless it is `optional` (then a warning and it is left out).
    pub async fn start(
        configs: Vec<(String, McpServerConfig)>,
        warn: Warn,
    ) -> Result<McpServers, McpError> {
        let starts = configs.into_iter().map(|(name, config)| {
            let warn = warn.clone();
            async move {
                let optional = config.optional;
                (name.clone(), optional, connect(name, config, warn).await)
            }
        });
        let mut servers = Vec::new();
        let mut failure = None;
        for (name, optional, started) in futures::future::join_all(starts).await {
            match started {
                Ok(server) => servers.push(Arc::new(server)),
                Err(e) if optional => warn(&format!("{e}\n(`{name}` is optional: left out)")),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let started = McpServers { servers };
        if let Some(e) = failure {
            started.shutdown().await;
            return Err(e);
        }
        Ok(started)
    }

    /// The running servers.
    pub fn servers(&self) -> &[Arc<McpServer>] {
        &self.servers
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Kills the stdio servers' process groups now, without waiting (before the process exits
    /// on its own).
    pub fn kill(&self) {
        for server in &self.servers {
            server.kill_group();
        }
    }

    /// Closes every server: the transport is closed (a child's stdin, an HTTP session), a
    /// child that has not exited after a grace period is killed with its process group.
    pub async fn shutdown(&self) {
        let closes = self.servers.iter().map(|s| s.shutdown());
        futures::future::join_all(closes).await;
    }
}

impl McpServer {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The end of what the server wrote on standard error (stdio servers).
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    async fn shutdown(&self) {
        let service = self.service.lock().await.take();
        if let Some(mut service) = service {
            let closed = service.close_with_timeout(SHUTDOWN_GRACE).await;
            if !matches!(closed, Ok(Some(_))) {
                self.kill_group();
            }
        }
        // Whatever the server started and left behind goes with it.
        self.kill_group();
    }

    /// Kills the stdio server's process group (once: the id is forgotten after).
    fn kill_group(&self) {
        kill_group(self.group.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// The tool's name on the server, from the name the model sees.
    fn original<'n>(&self, offered: &'n str) -> Option<&'n str> {
        offered
            .strip_prefix(self.name.as_str())
            .and_then(|rest| rest.strip_prefix(SEPARATOR))
    }

    /// Lists the tools again and keeps those allowed.
    async fn list(&self) -> Result<(), ServiceError> {
        self.changed.store(false, Ordering::SeqCst);
        let mut listed = Vec::new();
        let mut cursor = None;
        for page in 1.. {
            let params = cursor
                .take()
                .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let result = self.peer.list_tools(params).await?;
            listed.extend(result.tools);
            let Some(next) = result.next_cursor else {
                break;
            };
            if page == MAX_PAGES || listed.len() > 4 * MAX_TOOLS {
                (self.warn)(&format!(
                    "MCP server `{}`: its tool list goes on past {} tools in {page} pages; the rest are left out",
                    self.name,
                    listed.len()
                ));
                break;
            }
            cursor = Some(next);
        }
        let kept = keep(&self.name, listed, self.allow.as_deref(), &*self.warn);
        *self.tools.write().unwrap_or_else(|e| e.into_inner()) = kept;
        Ok(())
    }

    async fn call_tool(
        &self,
        offered: &str,
        args: Value,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let failed = |message: String| ToolError::Failed {
            tool: offered.to_owned(),
            message,
        };
        let original = self
            .original(offered)
            .ok_or_else(|| failed("not a tool of this server".into()))?;
        let arguments = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(ToolError::BadArguments {
                    tool: offered.to_owned(),
                    reason: format!(
                        "the arguments must be a JSON object, not {}",
                        glm_prompts::pyjson::dumps(&other)
                    ),
                });
            }
        };
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let params = CallToolRequestParams::new(original.to_owned()).with_arguments(arguments);
        // Dropping this future (the run's timeout, an interrupt) sends
        // `notifications/cancelled` for the request.
        let outcome = self.peer.call_tool(params).await;
        let result = match outcome {
            Ok(result) => result,
            Err(ServiceError::McpError(error)) => {
                return Err(failed(format!("the server answered: {}", error.message)));
            }
            Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)) => {
                let stderr = self.stderr.text();
                return Err(failed(format!(
                    "the MCP server `{}` is no longer running; its tools cannot be used in this run{}",
                    self.name,
                    stderr_note(&stderr)
                )));
            }
            Err(other) => return Err(failed(format!("the call failed: {other}"))),
        };
        let value = serde_json::to_value(&result).unwrap_or_default();
        let files = result::Files {
            dir: ctx.workdir.join("data"),
            prefix: format!("mcp_{}_{call}", self.name),
        };
        let rendered = result::render(&value, &files);
        if rendered.is_error {
            return Err(failed(rendered.observation.text));
        }
        Ok(rendered.observation.into())
    }
}

impl ToolSource for McpServer {
    fn tools(&self) -> Vec<SourceTool> {
        let tools = self.tools.read().unwrap_or_else(|e| e.into_inner());
        tools
            .iter()
            .map(|tool| {
                SourceTool::function(
                    format!("{}{SEPARATOR}{}", self.name, tool.name),
                    description(tool),
                    normalize(&Value::Object((*tool.input_schema).clone())),
                )
                .read_only(
                    tool.annotations
                        .as_ref()
                        .and_then(|a| a.read_only_hint)
                        .unwrap_or(false),
                )
            })
            .collect()
    }

    fn call<'a>(
        &'a self,
        name: &'a str,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(self.call_tool(name, args, ctx))
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn refresh(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if !self.changed.load(Ordering::SeqCst) {
                return false;
            }
            let before = self.tools();
            let relisted = tokio::time::timeout(RELIST_TIMEOUT, self.list()).await;
            let failure = match relisted {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} s", RELIST_TIMEOUT.as_secs())),
            };
            if let Some(e) = failure {
                (self.warn)(&format!(
                    "MCP server `{}`: the tool list changed but cannot be read again: {e}",
                    self.name
                ));
                return false;
            }
            self.tools() != before
        })
    }
}

/// The description the model reads: the server's (or its title), cut to a bound.
fn description(tool: &rmcp::model::Tool) -> String {
    let text = tool
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .or(tool.title.as_deref())
        .unwrap_or_default()
        .trim();
    if text.chars().count() <= MAX_DESCRIPTION_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_DESCRIPTION_CHARS).collect();
    format!("{cut}...")
}

/// Whether the model can write `name` on a call's first line, and it stays readable.
fn writable_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The tools kept from a listing: allowed, writable, the first [`MAX_TOOLS`], each name once.
fn keep(
    server: &str,
    listed: Vec<rmcp::model::Tool>,
    allow: Option<&[String]>,
    warn: &(dyn Fn(&str) + Send + Sync),
) -> Vec<rmcp::model::Tool> {
    let mut kept: Vec<rmcp::model::Tool> = Vec::new();
    for tool in listed {
        if allow.is_some_and(|allow| !allow.iter().any(|a| *a == tool.name)) {
            continue;
        }
        if !writable_tool_name(&tool.name) {
            let shown: String = tool.name.chars().take(60).collect();
            warn(&format!(
                "MCP server `{server}`: tool {shown:?} left out (a name must be letters, digits, `_`, `-` or `.`)"
            ));
            continue;
        }
        if kept.iter().any(|k| k.name == tool.name) {
            continue;
        }
        if kept.len() == MAX_TOOLS {
            warn(&format!(
                "MCP server `{server}` offers more than {MAX_TOOLS} tools; the rest are left out (name the ones you want with `tools = [...]`)"
            ));
            break;
        }
        kept.push(tool);
    }
    kept
}

/// Starts one server: spawn or connect, handshake and first listing, within its start-up
/// limit.
async fn connect(name: String, config: McpServerConfig, warn: Warn) -> Result<McpServer, McpError> {
    let transport = config.transport().map_err(|message| McpError::Config {
        name: name.clone(),
        message,
    })?;
    let changed = Arc::new(AtomicBool::new(false));
    let handler = Handler {
        changed: changed.clone(),
    };
    let stderr = StderrTail::default();
    let start_error = |message: String, stderr: &StderrTail| McpError::Start {
        name: name.clone(),
        message,
        stderr: stderr.text(),
    };
    let limit = config.startup_timeout();
    let group = Mutex::new(None);
    // A half-started server goes with whatever it started: on a failure, the start-up limit,
    // or this start being dropped (a signal). A started server has taken the group.
    let _orphans = KillOnDrop(&group);
    let starting = async {
        let service = match transport {
            McpTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let child = spawn(&command, &args, &env, cwd.as_deref(), &stderr)
                    .map_err(|e| start_error(e, &stderr))?;
                *group.lock().unwrap_or_else(|e| e.into_inner()) = child.id();
                handler.clone().serve(child).await
            }
            McpTransport::Http { url, bearer_token } => {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .redirect(same_origin_redirects())
                    .build()
                    .map_err(|e| start_error(e.to_string(), &stderr))?;
                let mut transport_config =
                    rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url);
                if let Some(token) = bearer_token {
                    transport_config = transport_config.auth_header(token);
                }
                let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
                    client,
                    transport_config,
                );
                handler.clone().serve(transport).await
            }
        };
        let service =
            service.map_err(|e| start_error(format!("the handshake failed: {e}"), &stderr))?;
        let server = McpServer {
            name: name.clone(),
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            allow: config.tools.clone(),
            timeout: config.tool_timeout(),
            changed: changed.clone(),
            tools: RwLock::new(Vec::new()),
            stderr: stderr.clone(),
            group: Mutex::new(group.lock().unwrap_or_else(|e| e.into_inner()).take()),
            calls: AtomicUsize::new(0),
            warn: warn.clone(),
        };
        if let Err(e) = server.list().await {
            server.shutdown().await;
            return Err(start_error(
                format!("listing its tools failed: {e}"),
                &stderr,
            ));
        }
        Ok(server)
    };
    let started = tokio::time::timeout(limit, starting).await;
    match started {
        Ok(result) => result,
        Err(_) => Err(start_error(
            format!(
                "no answer to the handshake within {} s (raise `startup_timeout_s` if it is slow to start)",
                limit.as_secs()
            ),
            &stderr,
        )),
    }
}

/// Redirects within the server's own origin, at most five; never to another host, port or
/// scheme (its session and token would follow).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(url::Url::origin);
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if first == Some(attempt.url().origin()) {
            attempt.follow()
        } else {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(format!(
                "a redirect to another origin ({to}) is not followed"
            ))
        }
    })
}

/// Kills the process group it holds, if any, when dropped.
struct KillOnDrop<'a>(&'a Mutex<Option<u32>>);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        kill_group(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// Kills a process group, when there is one.
fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(group) = group.and_then(|g| i32::try_from(g).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    #[cfg(not(unix))]
    let _ = group;
}

/// `command` as a path: itself when it names a path, else the first executable of that name on
/// `path`.
fn find_program(command: &str, path: &str) -> Option<std::path::PathBuf> {
    let executable = |p: &Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        }
        #[cfg(not(unix))]
        {
            p.is_file()
        }
    };
    if command.contains(std::path::MAIN_SEPARATOR) {
        let p = Path::new(command);
        return executable(p).then(|| p.to_path_buf());
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(command))
        .find(|p| executable(p))
}

/// `setpriv` (util-linux), when this system has it: a server started through it gets Linux's
/// parent-death signal, so it is killed with glm-agent even when glm-agent itself is killed
/// with SIGKILL and can run nothing. glm-agent cannot set that signal itself: it must be set
/// between fork and exec, which takes `unsafe` code, and this workspace has none.
fn death_signal() -> Option<&'static Path> {
    static FOUND: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            if !cfg!(target_os = "linux") {
                return None;
            }
            let path = std::env::var("PATH").unwrap_or_default();
            find_program("setpriv", &path).filter(|setpriv| {
                std::process::Command::new(setpriv)
                    .args(["--pdeathsig", "KILL", "--", "true"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
        })
        .as_deref()
}

/// Spawns a stdio server with only the environment its config gives plus `PATH` and `HOME`,
/// in a process group of its own (so a kill reaches whatever it started), its standard error
/// kept in a bounded tail.
fn spawn(
    command: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&Path>,
    stderr: &StderrTail,
) -> Result<rmcp::transport::TokioChildProcess, String> {
    let path = env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    // A relative path is the server's own folder's.
    let named = match cwd {
        Some(dir) if command.contains('/') && Path::new(command).is_relative() => dir.join(command),
        _ => std::path::PathBuf::from(command),
    };
    if find_program(&named.to_string_lossy(), &path).is_none() {
        return Err(format!(
            "the command `{command}` was not found (is it installed and on PATH?)"
        ));
    }
    // The command as written: `setpriv` looks it up on the server's PATH, as a shell would,
    // and the server sees the name it was given.
    let mut cmd = match death_signal() {
        Some(setpriv) => {
            let mut cmd = tokio::process::Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--", command]);
            cmd
        }
        None => tokio::process::Command::new(command),
    };
    cmd.args(args).env_clear().kill_on_drop(true);
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.envs(env);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    let (child, err) = rmcp::transport::TokioChildProcess::builder(wrapped)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("the command `{command}` was not found (is it installed and on PATH?)")
            }
            _ => format!("cannot run `{command}`: {e}"),
        })?;
    if let Some(mut err) = err {
        let tail = stderr.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.push(&buf[..n]);
            }
        });
    }
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_end() {
        let tail = StderrTail::default();
        tail.push(&vec![b'a'; 10_000]);
        tail.push(b"the end");
        let text = tail.text();
        assert_eq!(text.len(), STDERR_TAIL_BYTES);
        assert!(text.ends_with("the end"));
    }

    #[test]
    fn tool_names_the_model_can_write() {
        assert!(writable_tool_name("get-tiny-image"));
        assert!(writable_tool_name("fs.read_file"));
        assert!(!writable_tool_name("two\nlines"));
        assert!(!writable_tool_name("has space"));
        assert!(!writable_tool_name(""));
        assert!(!writable_tool_name(&"x".repeat(129)));
    }

    #[test]
    fn programs_are_found_as_a_shell_finds_them() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(find_program("sh", &path).is_some());
        assert!(find_program("glm-agent-no-such-command", &path).is_none());
        assert!(find_program("/bin/sh", "").is_some());
        assert!(find_program("/bin/no-such-file", &path).is_none());
    }
}
