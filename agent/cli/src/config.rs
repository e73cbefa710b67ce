//! The settings of every command, by concern, and `glm-agent config show`.
//!
//! Each concern is defined once below; [`Config::load`] merges any of them the same way for
//! every command (defaults, the config file, `GLM_AGENT_*` variables, flags).

use std::path::PathBuf;

use clap::Subcommand;
use glm_agent::Settings;
use glm_agent::engine::Sampling;
use glm_engine_mistralrs::model::hub::DEFAULT_MODEL;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::settings::{Concern, Layered, Layers, SettingsError, concern, config_path};

concern! {
    /// Which engine and model.
    pub struct EngineSettings {
        #[arg(long, value_name = "ENGINE")]
        engine: String = Some("embedded".into()), env "GLM_AGENT_ENGINE",
            "The engine: embedded (mistral.rs in this process), openai:URL (an OpenAI-compatible server; key in OPENAI_API_KEY) or replay:FILE (recorded outputs)";
        #[arg(long, value_name = "PATH_OR_ID")]
        model: String = Some(DEFAULT_MODEL.into()), env "GLM_AGENT_MODEL",
            "The model: a local folder or a Hugging Face repo id (embedded), or the served model's name (openai)";
        #[arg(long, value_name = "Q")]
        isq: String = Some("auto".into()), env "GLM_AGENT_ISQ",
            "Quantisation at load (embedded): auto (q4k on CPU for models of 1B parameters or more, or when f32 does not fit in memory), none, q4k, q8_0, q4_0, q5k, q6k, ...";
        #[arg(long, value_name = "BOOL")]
        prefix_cache: bool = Some(true), env "GLM_AGENT_PREFIX_CACHE",
            "Reuse the keys and values of earlier requests that share a prefix (embedded)";
        #[arg(long, value_name = "PATH")]
        tokenizer: PathBuf = None, env "GLM_AGENT_TOKENIZER",
            "The model's tokenizer.json, for the openai and replay engines [default: the model folder's]";
        #[arg(long, value_name = "N")]
        max_sequences: usize = None, env "GLM_AGENT_MAX_SEQUENCES",
            "Requests the embedded engine runs at once, batched [default: 4 with a GPU, 1 on CPU]";
        #[arg(long, value_name = "DTYPE")]
        dtype: String = Some("auto".into()), env "GLM_AGENT_DTYPE",
            "The embedded engine's activations, which a CPU build keeps keys and values in: auto (f32 on CPU, bf16 on a GPU), f32, f16 or bf16 (half f32's key/value bytes; on CPU bf16 needs quantised weights)";
        #[arg(long, value_name = "TYPE")]
        kv_cache_type: String = Some("auto".into()), env "GLM_AGENT_KV_CACHE_TYPE",
            "Keys and values of a GPU build's paged pool (embedded, sized by --context-tokens): auto (bf16) or f8e4m3 (half the bytes: GLM-4-9B-Chat-1M's whole 1M-token window in 40 GiB); a CPU build keeps them in --dtype's type";
        #[arg(long, value_name = "BOOL")]
        use_serve: bool = Some(true), env "GLM_AGENT_USE_SERVE",
            "Use the model a running glm-agent serve on this machine already holds, instead of loading it again (embedded); false loads it in this process";
    }
}

concern! {
    /// The agent loop's budgets and system prompt.
    pub struct LoopSettings {
        #[arg(long, value_name = "N")]
        max_steps: usize = Some(glm_agent::Settings::default().max_steps), env "GLM_AGENT_MAX_STEPS",
            "The most model turns per run";
        #[arg(long, value_name = "N")]
        max_tokens: usize = Some(glm_agent::Settings::default().max_generated_tokens), env "GLM_AGENT_MAX_TOKENS",
            "The most tokens generated over a run";
        #[arg(long, value_name = "N")]
        max_step_tokens: u32 = Some(glm_agent::Settings::default().max_step_tokens), env "GLM_AGENT_MAX_STEP_TOKENS",
            "The most tokens of one model turn";
        #[arg(long, value_name = "S")]
        time_limit: u64 = None, env "GLM_AGENT_TIME_LIMIT",
            "Wall-clock limit of a run, in seconds";
        #[arg(long, value_name = "S")]
        tool_timeout: u64 = Some(glm_agent::Settings::default().tool_timeout_s), env "GLM_AGENT_TOOL_TIMEOUT",
            "The most one tool call may take, in seconds";
        #[arg(long, value_name = "TEXT")]
        system_prompt: String = None, env "GLM_AGENT_SYSTEM_PROMPT",
            "A system prompt, rendered with the tool descriptions";
        #[arg(long, value_name = "N")]
        context_tokens: usize = None, env "GLM_AGENT_CONTEXT_TOKENS",
            "The tokens a prompt and its answer may take: past it old tool outputs are cut, and a prompt that still does not fit stops the run (exit 2) [default: the model's window, on the embedded engine lowered to what memory holds of its keys and values]";
        #[arg(long, value_name = "N")]
        effective_tokens: usize = Some(65_536), env "GLM_AGENT_EFFECTIVE_TOKENS",
            "Past this many prompt tokens a warning says the model reads less reliably (GLM-4-9B-Chat-1M on RULER: 86.7 at 64K tokens, 83.1 at 128K)";
        #[arg(long, value_name = "N")]
        loop_warn: usize = Some(glm_agent::Settings::default().loop_warn), env "GLM_AGENT_LOOP_WARN",
            "The same call giving the same result this many times in the last 10 calls: the model is told it repeats itself (0: never)";
        #[arg(long, value_name = "N")]
        loop_stop: usize = Some(glm_agent::Settings::default().loop_stop), env "GLM_AGENT_LOOP_STOP",
            "The same call giving the same result this many times in the last 10 calls ends the run, exit 3 (0: never)";
    }
}

concern! {
    /// How tokens are sampled.
    pub struct SamplingSettings {
        #[arg(long, value_name = "T")]
        temperature: f32 = Some(Sampling::default().temperature), env "GLM_AGENT_TEMPERATURE",
            "Sampling temperature; 0 for greedy";
        #[arg(long, value_name = "P")]
        top_p: f32 = Some(Sampling::default().top_p), env "GLM_AGENT_TOP_P",
            "Nucleus sampling mass";
        #[arg(long, value_name = "K")]
        top_k: u32 = None, env "GLM_AGENT_TOP_K",
            "Keep only the k most likely tokens";
        #[arg(long, value_name = "N")]
        seed: u64 = None, env "GLM_AGENT_SEED",
            "Seed for reproducible sampling";
    }
}

concern! {
    /// The tools offered and what the built-in ones may reach.
    pub struct ToolSettings {
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        tools: Vec<String> = Some(vec!["python".into(), "simple_browser".into()]), env "GLM_AGENT_TOOLS",
            "Tools offered to the model, comma separated: built-ins, MCP servers (NAME: all its tools) or their tools (NAME__TOOL); `none` for none [default: the built-ins and every configured server]";
        #[arg(long, value_name = "HOST")]
        allow_host: Vec<String> = Some(Vec::new()), env "GLM_AGENT_ALLOW_HOSTS",
            "A private or loopback host the browser may reach (repeatable)";
        #[arg(long, value_name = "BACKEND")]
        search: String = Some("duckduckgo".into()), env "GLM_AGENT_SEARCH",
            "Search backend: duckduckgo, searxng:URL or brave (key in BRAVE_SEARCH_API_KEY)";
        #[arg(long, value_name = "SECONDS")]
        cell_timeout: u64 = Some(60), env "GLM_AGENT_CELL_TIMEOUT",
            "Seconds one python cell may run before it is stopped and the notebook rolled back";
        #[arg(long, value_name = "CHARS")]
        page_chars: usize = Some(glm_tools::browser::BrowserConfig::default().max_page_chars), env "GLM_AGENT_PAGE_CHARS",
            "Characters of a web page the browser shows the model at once (GLM-4-9B-Chat-1M can take whole pages: raise it when the context allows)";
    }
}

concern! {
    /// `glm-agent serve`: where it listens and what one client may ask of it.
    pub struct ServeSettings {
        #[arg(long, value_name = "ADDR")]
        host: String = Some("127.0.0.1".into()), env "GLM_AGENT_HOST",
            "The address serve listens on";
        #[arg(long, value_name = "PORT")]
        port: u16 = Some(8000), env "GLM_AGENT_PORT",
            "The port serve listens on (0 picks a free one; the address is printed on stderr)";
        #[arg(long, value_name = "NAME")]
        served_model_name: String = None, env "GLM_AGENT_SERVED_MODEL_NAME",
            "The model name serve's clients send [default: the model folder's or repo's name]";
        #[arg(long, value_name = "N")]
        max_queue: usize = Some(glm_serve::Options::new("").max_queue), env "GLM_AGENT_MAX_QUEUE",
            "Requests serve holds waiting or running at once; more are answered 429 at once";
        #[arg(long, value_name = "N")]
        default_max_tokens: u32 = Some(glm_serve::Options::new("").default_max_tokens), env "GLM_AGENT_DEFAULT_MAX_TOKENS",
            "The most tokens of a served answer when a request sets no limit";
        #[arg(long, value_name = "N")]
        remember: usize = Some(glm_serve::Options::new("").remember), env "GLM_AGENT_REMEMBER",
            "Served answers remembered for token-exact follow-up prompts";
        #[arg(long, value_name = "N")]
        store_responses: usize = Some(glm_serve::Options::new("").store_responses), env "GLM_AGENT_STORE_RESPONSES",
            "Responses kept in memory for previous_response_id (the oldest dropped first; 0 keeps none)";
        #[arg(long, value_name = "N")]
        max_model_len: usize = None, env "GLM_AGENT_MAX_MODEL_LEN",
            "Serve refuses prompts and limits beyond N tokens, below the model's own context (its keys and values must fit in memory: about 80 KiB a token for GLM-4-9B in bf16)";
        #[arg(long, value_name = "N")]
        max_connections: usize = Some(glm_serve::Limits::default().max_connections), env "GLM_AGENT_MAX_CONNECTIONS",
            "Connections serve holds open at once; more wait to be accepted";
        #[arg(long, value_name = "MIB")]
        max_body_mib: usize = Some(glm_serve::Limits::default().max_body >> 20), env "GLM_AGENT_MAX_BODY_MIB",
            "The largest request body serve reads, in MiB";
    }
}

concern! {
    /// Which tool calls run without asking.
    pub struct ApprovalSettings {
        #[arg(long, value_name = "MODE")]
        approval: String = Some("ask".into()), env "GLM_AGENT_APPROVAL",
            "Which tool calls run: auto (all), ask (those that cannot change anything outside the run run, the rest are asked about on the terminal and refused without one), deny (only those --allow names)";
        #[arg(long, value_name = "PATTERN")]
        allow: Vec<String> = Some(Vec::new()), env "GLM_AGENT_ALLOW",
            "A tool that runs without asking: its name, a server's NAME__*, or * (repeatable)";
        #[arg(long, value_name = "PATTERN")]
        deny: Vec<String> = Some(Vec::new()), env "GLM_AGENT_DENY",
            "A tool that never runs, whatever else allows it: its name, NAME__*, or * (repeatable)";
    }
}

impl ApprovalSettings {
    /// The approval policy.
    pub fn policy(&self) -> Result<glm_agent::approval::Policy, Failure> {
        let mode = self
            .approval
            .as_deref()
            .unwrap_or("ask")
            .parse()
            .map_err(|e: String| Failure::bad_input(anyhow::anyhow!("--approval: {e}")))?;
        Ok(glm_agent::approval::Policy {
            mode,
            allow: self.allow.clone().unwrap_or_default(),
            deny: self.deny.clone().unwrap_or_default(),
        })
    }
}

concern! {
    /// Where run traces go.
    pub struct TraceSettings {
        #[arg(long, value_name = "DIR")]
        trace_dir: PathBuf = Some(default_trace_dir()), env "GLM_AGENT_TRACE_DIR",
            "Where run traces go";
    }
}

/// `$XDG_STATE_HOME/glm-agent/traces`, else `~/.local/state/glm-agent/traces`; without a home,
/// `$GLM_AGENT_CACHE/traces`, else `./glm-agent-traces` (never a folder others share).
fn default_trace_dir() -> PathBuf {
    let var = |k: &str| std::env::var(k).ok().filter(|d| !d.is_empty());
    if let Some(state) = var("XDG_STATE_HOME") {
        return PathBuf::from(state).join("glm-agent/traces");
    }
    if let Some(home) = var("HOME") {
        return PathBuf::from(home).join(".local/state/glm-agent/traces");
    }
    match var("GLM_AGENT_CACHE") {
        Some(cache) => PathBuf::from(cache).join("traces"),
        None => PathBuf::from("glm-agent-traces"),
    }
}

/// Every concern's keys, for checking the config file.
const ALL_KEYS: &[&[crate::settings::Key]] = &[
    EngineSettings::KEYS,
    LoopSettings::KEYS,
    SamplingSettings::KEYS,
    ToolSettings::KEYS,
    ApprovalSettings::KEYS,
    TraceSettings::KEYS,
    ServeSettings::KEYS,
];

/// The config file's named tables.
const TABLES: &[&str] = &["mcp_servers"];

/// The layers below the flags, read once per command.
pub struct Config {
    layers: Layers,
}

fn settings_error(e: SettingsError) -> Failure {
    Failure::bad_input(e)
}

impl Config {
    /// Reads the config file (see [`config_path`]) and the environment.
    pub fn load() -> Result<Config, Failure> {
        let path = config_path(|k| std::env::var(k).ok());
        let layers = Layers::load(&path, ALL_KEYS, TABLES, |k| std::env::var(k).ok())
            .map_err(settings_error)?;
        Ok(Config { layers })
    }

    /// The `[mcp_servers.NAME]` tables.
    pub fn mcp_servers(
        &self,
    ) -> Result<Option<std::collections::BTreeMap<String, glm_tools::mcp::McpServerConfig>>, Failure>
    {
        self.layers.table("mcp_servers").map_err(settings_error)
    }

    /// One concern with `flags` on top.
    pub fn resolve<T: Concern>(&self, flags: &T) -> Result<Layered<T>, Failure> {
        self.layers.resolve(flags.clone()).map_err(settings_error)
    }
}

impl EngineSettings {
    /// The engine's name and target.
    pub fn engine(&self) -> &str {
        self.engine.as_deref().unwrap_or("embedded")
    }

    /// The model.
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_MODEL)
    }
}

impl ToolSettings {
    /// The built-in tools' options with these settings, the cache folder and offline mode.
    pub fn builtin_options(
        &self,
        cache: std::path::PathBuf,
        offline: bool,
    ) -> Result<glm_tools::builtins::BuiltinOptions, Failure> {
        let search = glm_tools::browser::SearchChoice::parse(
            self.search.as_deref().unwrap_or("duckduckgo"),
            |k| std::env::var(k).ok(),
        )
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("search: {e}")))?;
        Ok(glm_tools::builtins::BuiltinOptions {
            allow_hosts: self.allow_host.clone().unwrap_or_default(),
            search,
            offline,
            python_limits: self.python_limits(),
            page_chars: self
                .page_chars
                .unwrap_or(glm_tools::browser::BrowserConfig::default().max_page_chars)
                .max(100),
            ..glm_tools::builtins::BuiltinOptions::new(cache)
        })
    }

    /// The python sandbox's limits with the cell deadline set.
    pub fn python_limits(&self) -> glm_tools::python::Limits {
        glm_tools::python::Limits {
            deadline: std::time::Duration::from_secs(self.cell_timeout.unwrap_or(60).max(1)),
            ..glm_tools::python::Limits::default()
        }
    }

    /// The tools to offer; empty for none.
    pub fn names(&self) -> Vec<&str> {
        match self.tools.as_deref() {
            None => vec!["python", "simple_browser"],
            Some([only]) if only == "none" => Vec::new(),
            Some(list) => list.iter().map(String::as_str).collect(),
        }
    }
}

impl SamplingSettings {
    /// The sampler's settings; a temperature of 0 or less is greedy.
    pub fn sampling(&self) -> Sampling {
        self.sampling_over(Sampling::default())
    }

    /// `base` with what these settings set on top.
    pub fn sampling_over(&self, base: Sampling) -> Sampling {
        let temperature = self.temperature.unwrap_or(base.temperature);
        Sampling {
            temperature,
            top_p: self.top_p.unwrap_or(base.top_p),
            top_k: self.top_k.or(base.top_k),
            seed: self.seed.or(base.seed),
            greedy: temperature <= 0.0,
        }
    }
}

/// The agent loop's settings from its concerns.
pub fn loop_settings(looping: &LoopSettings, sampling: &SamplingSettings) -> Settings {
    loop_settings_over(Settings::default(), looping, sampling)
}

/// `base` with what `looping` and `sampling` set on top (a resumed run: the recorded settings,
/// then the flags given now).
pub fn loop_settings_over(
    base: Settings,
    looping: &LoopSettings,
    sampling: &SamplingSettings,
) -> Settings {
    let default = base;
    Settings {
        max_steps: looping.max_steps.unwrap_or(default.max_steps),
        max_generated_tokens: looping.max_tokens.unwrap_or(default.max_generated_tokens),
        max_step_tokens: looping.max_step_tokens.unwrap_or(default.max_step_tokens),
        time_limit_s: looping.time_limit.or(default.time_limit_s),
        tool_timeout_s: looping.tool_timeout.unwrap_or(default.tool_timeout_s),
        sampling: sampling.sampling_over(default.sampling.clone()),
        system_prompt: looping
            .system_prompt
            .clone()
            .or_else(|| default.system_prompt.clone()),
        loop_warn: looping.loop_warn.unwrap_or(default.loop_warn),
        loop_stop: looping.loop_stop.unwrap_or(default.loop_stop),
        context_tokens: looping.context_tokens.or(default.context_tokens),
        ..default
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and where each came from.
    #[command(
        after_help = "Settings come from the config file ($GLM_AGENT_CONFIG, else \
$XDG_CONFIG_HOME/glm-agent/config.toml, else ~/.config/glm-agent/config.toml), then environment \
variables (GLM_AGENT_MODEL, GLM_AGENT_MAX_STEPS, ...), then flags. Every command reads them the \
same way.\n\n\
Examples:\n  glm-agent config show\n  GLM_AGENT_MAX_STEPS=5 glm-agent config show --json"
    )]
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Each setting's built-in value and environment variable, as `--help` shows them beside its
/// flag (`[default: 30] [env: GLM_AGENT_MAX_STEPS]`).
pub fn help_notes() -> Vec<(crate::settings::Key, String)> {
    fn add<T: Concern>(notes: &mut Vec<(crate::settings::Key, String)>) {
        let defaults = serde_json::to_value(T::defaults()).unwrap_or_default();
        for key in T::KEYS {
            let shown = match defaults.get(key.name).map(crate::settings::shortest) {
                Some(v) if !v.is_null() && !key.help.contains("[default:") => {
                    format!("[default: {}] ", plain(&v))
                }
                _ => String::new(),
            };
            notes.push((*key, format!("{shown}[env: {}]", key.env)));
        }
    }
    let mut notes = Vec::new();
    add::<EngineSettings>(&mut notes);
    add::<LoopSettings>(&mut notes);
    add::<SamplingSettings>(&mut notes);
    add::<ToolSettings>(&mut notes);
    add::<ApprovalSettings>(&mut notes);
    add::<TraceSettings>(&mut notes);
    add::<ServeSettings>(&mut notes);
    notes
}

/// A value as a person writes it on the command line: strings unquoted, lists with commas.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `command` and its subcommands with [`help_notes`] added to the flags that set a setting (the
/// flags of a concern, known by their help text; a command's own flag of the same name is not
/// read from the settings).
pub fn with_help_notes(
    command: clap::Command,
    notes: &[(crate::settings::Key, String)],
) -> clap::Command {
    let args: Vec<(String, String)> = command
        .get_arguments()
        .map(|a| {
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            (a.get_id().to_string(), help)
        })
        .collect();
    let mut command = command;
    for (key, note) in notes {
        if args
            .iter()
            .any(|(id, help)| id == key.name && help == key.help)
        {
            command = command.mut_arg(key.name, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} {note}"))
            });
        }
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, |c| with_help_notes(c, notes));
    }
    command
}

/// `config show`.
pub fn show(command: ConfigCommand) -> CmdResult {
    let ConfigCommand::Show { json } = command;
    let config = Config::load()?;
    let mut rows = config.resolve(&EngineSettings::default())?.rows();
    rows.extend(config.resolve(&LoopSettings::default())?.rows());
    rows.extend(config.resolve(&SamplingSettings::default())?.rows());
    rows.extend(config.resolve(&ToolSettings::default())?.rows());
    rows.extend(config.resolve(&ApprovalSettings::default())?.rows());
    rows.extend(config.resolve(&TraceSettings::default())?.rows());
    rows.extend(config.resolve(&ServeSettings::default())?.rows());
    let servers = config.mcp_servers()?.unwrap_or_default();
    if json {
        let mut value: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, s, _)| {
                (
                    (*k).to_owned(),
                    serde_json::json!({"value": v, "source": s.to_string()}),
                )
            })
            .collect();
        let servers = servers
            .iter()
            .map(|(name, server)| (name.clone(), server_summary(server)))
            .collect();
        value.insert("mcp_servers".into(), serde_json::Value::Object(servers));
        return write_stdout(format!("{}\n", serde_json::Value::Object(value)).as_bytes());
    }
    let path = config.layers.path();
    let mut out = format!(
        "config file: {}{}\n\n",
        path.display(),
        if path.exists() { "" } else { " (not present)" }
    );
    for (k, v, s, help) in rows {
        let help = first_clause(help);
        out.push_str(&format!("{k:<22} {:<40} {s:<28} # {help}\n", v.to_string()));
    }
    out.push_str(&format!(
        "\nMCP servers ([mcp_servers.NAME] in the config file): {}\n",
        servers.len()
    ));
    for (name, server) in &servers {
        out.push_str(&format!("  {name:<20} {}\n", server_line(server)));
    }
    write_stdout(out.as_bytes())
}

/// A help text up to its first `: ` or `. ` outside brackets (the rest is detail).
fn first_clause(help: &str) -> &str {
    let mut depth = 0i32;
    let bytes = help.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b':' | b'.' if depth == 0 && bytes.get(i + 1).is_none_or(|n| *n == b' ') => {
                return &help[..i];
            }
            _ => {}
        }
    }
    help
}

/// What `config show --json` says of a server: how it is reached, and the names (never the
/// values) of the environment it is given.
fn server_summary(server: &glm_tools::mcp::McpServerConfig) -> serde_json::Value {
    serde_json::json!({
        "command": server.command, "args": server.args, "url": server.url,
        "env": server.env.keys().collect::<Vec<_>>(), "cwd": server.cwd,
        "tools": server.tools, "optional": server.optional,
    })
}

/// One line for a server: its command and arguments or its URL, and its environment's names.
fn server_line(server: &glm_tools::mcp::McpServerConfig) -> String {
    let mut line = match (&server.command, &server.url) {
        (Some(command), _) => std::iter::once(command.as_str())
            .chain(server.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        (None, Some(url)) => url.clone(),
        (None, None) => "(neither command nor url: not usable)".into(),
    };
    if !server.env.is_empty() {
        let names: Vec<&str> = server.env.keys().map(String::as_str).collect();
        line.push_str(&format!("  (env: {})", names.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Source;

    fn layers(text: &str, env: fn(&str) -> Option<String>) -> Result<Layers, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        Layers::load(&path, ALL_KEYS, TABLES, env)
    }

    #[test]
    fn file_then_env_then_flags() {
        let env = |k: &str| match k {
            "GLM_AGENT_MODEL" => Some("/models/b".to_owned()),
            "GLM_AGENT_ALLOW_HOSTS" => Some("a.internal, b.internal".to_owned()),
            "GLM_AGENT_TIME_LIMIT" => Some("30".to_owned()),
            _ => None,
        };
        let layers = layers(
            "max_steps = 7\nmodel = \"/models/a\"\ntools = [\"python\"]\n",
            env,
        )
        .unwrap();
        let looping = layers.resolve(LoopSettings::default()).unwrap();
        assert_eq!(looping.value.max_steps, Some(7));
        assert_eq!(looping.value.time_limit, Some(30));
        assert!(matches!(looping.sources["max_steps"], Source::File(_)));
        let engine = layers.resolve(EngineSettings::default()).unwrap();
        assert_eq!(engine.value.model(), "/models/b");
        assert_eq!(
            engine.sources["model"],
            Source::Env("GLM_AGENT_MODEL".into())
        );
        assert_eq!(engine.sources["isq"], Source::Default);
        let tools = layers.resolve(ToolSettings::default()).unwrap();
        assert_eq!(tools.value.names(), vec!["python"]);
        assert_eq!(
            tools.value.allow_host,
            Some(vec!["a.internal".to_owned(), "b.internal".to_owned()])
        );
        let flags = LoopSettings {
            max_steps: Some(3),
            ..LoopSettings::default()
        };
        let looping = layers.resolve(flags).unwrap();
        assert_eq!(looping.value.max_steps, Some(3));
        assert_eq!(looping.sources["max_steps"], Source::Flag);
    }

    #[test]
    fn mistakes_are_named() {
        let none = |_: &str| None;
        let err = layers("max_stepz = 7\n", none).err().unwrap().to_string();
        assert!(err.contains("unknown setting `max_stepz`"), "{err}");
        let layered = layers("max_steps = \"many\"\n", none).unwrap();
        let err = layered
            .resolve(LoopSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_steps"), "{err}");
        assert!(layers("max_steps = [", none).is_err());
        let env = |k: &str| (k == "GLM_AGENT_MAX_STEPS").then(|| "x".to_owned());
        let layered = layers("", env).unwrap();
        let err = layered
            .resolve(LoopSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("GLM_AGENT_MAX_STEPS"), "{err}");
    }

    #[test]
    fn keys_are_named_as_their_flags_and_old_names_still_read() {
        let layers = layers(
            "time_limit = 9\nmax_generated_tokens = 5\nallow_hosts = [\"x\"]\n",
            |_| None,
        )
        .unwrap();
        let looping = layers.resolve(LoopSettings::default()).unwrap();
        assert_eq!(looping.value.max_tokens, Some(5));
        assert_eq!(looping.value.time_limit, Some(9));
        let tools = layers.resolve(ToolSettings::default()).unwrap();
        assert_eq!(tools.value.allow_host, Some(vec!["x".to_owned()]));
    }
}
