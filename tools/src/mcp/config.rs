//! How a server is configured: a `[mcp_servers.NAME]` table, or a `--mcp NAME=...` flag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a server has to answer the handshake and list its tools, by default.
const DEFAULT_STARTUP_TIMEOUT_S: u64 = 30;

/// One server's settings, as written in the config file.
///
/// ```toml
/// [mcp_servers.everything]
/// command = "npx"
/// args = ["-y", "@modelcontextprotocol/server-everything"]
/// tools = ["echo", "get-sum"]
///
/// [mcp_servers.search]
/// url = "https://mcp.example.com/mcp"
/// bearer_token_env = "SEARCH_MCP_TOKEN"
/// optional = true
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program to run (stdio servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables it gets (besides `PATH` and `HOME`; nothing else is passed on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The folder it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// The endpoint (streamable HTTP servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding a bearer token for the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Only these of its tools are offered (their names on the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Seconds it has to start and list its tools (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout_s: Option<u64>,
    /// Seconds one call to its tools may take (default: the run's tool timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_timeout_s: Option<u64>,
    /// A server that fails to start is left out with a warning instead of stopping the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// How to reach a server, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A command spoken to over its stdin and stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its environment besides `PATH` and `HOME`.
        env: BTreeMap<String, String>,
        /// Its folder.
        cwd: Option<PathBuf>,
    },
    /// A streamable HTTP endpoint.
    Http {
        /// The endpoint's address (`https://host/mcp`).
        url: String,
        /// The token, read from the environment (never written anywhere).
        bearer_token: Option<String>,
    },
}

impl McpServerConfig {
    /// The transport, or what is wrong with the settings.
    pub fn transport(&self) -> Result<McpTransport, String> {
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                Err("set either `command` (stdio) or `url` (HTTP), not both".into())
            }
            (None, None) => {
                Err("set `command` (a stdio server) or `url` (a streamable HTTP server)".into())
            }
            (Some(command), None) => {
                if self.bearer_token_env.is_some() {
                    return Err("`bearer_token_env` is for `url` servers".into());
                }
                if command.trim().is_empty() {
                    return Err("`command` is empty".into());
                }
                Ok(McpTransport::Stdio {
                    command: command.clone(),
                    args: self.args.clone(),
                    env: self.env.clone(),
                    cwd: self.cwd.clone(),
                })
            }
            (None, Some(url)) => {
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err("`args`, `env` and `cwd` are for `command` servers".into());
                }
                let parsed = url::Url::parse(url).map_err(|e| format!("`url` {url:?}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "`url` must be http or https, not {}",
                        parsed.scheme()
                    ));
                }
                let bearer_token = match &self.bearer_token_env {
                    None => None,
                    Some(var) => match std::env::var(var) {
                        Ok(token) if !token.is_empty() => Some(token),
                        _ => {
                            return Err(format!(
                                "`bearer_token_env` names {var}, which is not set"
                            ));
                        }
                    },
                };
                Ok(McpTransport::Http {
                    url: url.clone(),
                    bearer_token,
                })
            }
        }
    }

    /// The start-up limit.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(
            self.startup_timeout_s
                .unwrap_or(DEFAULT_STARTUP_TIMEOUT_S)
                .max(1),
        )
    }

    /// The per-call limit, when set.
    pub fn tool_timeout(&self) -> Option<Duration> {
        self.tool_timeout_s.map(|s| Duration::from_secs(s.max(1)))
    }
}

/// Whether `name` can name a server: letters, digits, `-` and single `_` (the name the
/// model sees is `NAME__TOOL`), at most 64 characters.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.contains(super::SEPARATOR)
        && !name.ends_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Reads `NAME=URL` (an http or https URL) or `NAME=COMMAND ARGS...` (split as a shell
/// would: quotes and backslashes work, nothing is expanded).
pub fn parse_flag(flag: &str) -> Result<(String, McpServerConfig), String> {
    let Some((name, rest)) = flag.split_once('=') else {
        return Err(format!(
            "--mcp {flag:?}: write NAME=COMMAND ARGS... or NAME=URL"
        ));
    };
    let name = name.trim();
    if !valid_server_name(name) {
        return Err(format!(
            "--mcp: {name:?} cannot name a server (letters, digits, `-` and `_`, no `__`)"
        ));
    }
    let rest = rest.trim();
    if rest.starts_with("http://") || rest.starts_with("https://") {
        let config = McpServerConfig {
            url: Some(rest.to_owned()),
            ..McpServerConfig::default()
        };
        return Ok((name.to_owned(), config));
    }
    let words = shlex::split(rest).ok_or_else(|| format!("--mcp {flag:?}: unbalanced quotes"))?;
    // Leading KEY=VALUE words are the server's environment, as a shell reads them.
    let mut env = BTreeMap::new();
    let mut words = words.as_slice();
    while let Some((key, value)) = words.first().and_then(|w| env_assignment(w)) {
        env.insert(key.to_owned(), value.to_owned());
        words = &words[1..];
    }
    let Some((command, args)) = words.split_first() else {
        return Err(format!("--mcp {name}=: no command"));
    };
    let config = McpServerConfig {
        command: Some(command.clone()),
        args: args.to_vec(),
        env,
        ..McpServerConfig::default()
    };
    Ok((name.to_owned(), config))
}

/// `KEY=VALUE` with a shell variable's name as KEY.
fn env_assignment(word: &str) -> Option<(&str, &str)> {
    let (key, value) = word.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_gives_the_server_environment_as_a_shell_would() {
        let (_, config) =
            parse_flag("mem=MEMORY_FILE_PATH='/tmp/a b.json' DEBUG=1 npx -y server-memory X=1")
                .unwrap();
        assert_eq!(config.command.as_deref(), Some("npx"));
        assert_eq!(config.args, ["-y", "server-memory", "X=1"]);
        let env: Vec<(&str, &str)> = config
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("DEBUG", "1"), ("MEMORY_FILE_PATH", "/tmp/a b.json")]);
        assert!(
            parse_flag("mem=A=1").is_err(),
            "an environment and no command"
        );
        let (_, config) = parse_flag("x=./1=odd-name").unwrap();
        assert_eq!(config.command.as_deref(), Some("./1=odd-name"));
    }

    #[test]
    fn flags_name_a_command_or_a_url() {
        let (name, config) = parse_flag("ev=node 'dir with space/index.js' stdio").unwrap();
        assert_eq!(name, "ev");
        assert_eq!(config.command.as_deref(), Some("node"));
        assert_eq!(config.args, ["dir with space/index.js", "stdio"]);
        let (_, config) = parse_flag("web=http://127.0.0.1:3001/mcp").unwrap();
        assert_eq!(config.url.as_deref(), Some("http://127.0.0.1:3001/mcp"));
        assert!(parse_flag("no_equals").is_err());
        assert!(parse_flag("a__b=node x").is_err());
        assert!(parse_flag("ev=").is_err());
        assert!(parse_flag("ev=node 'open").is_err());
    }

    #[test]
    fn transports_are_checked() {
        let both = McpServerConfig {
            command: Some("x".into()),
            url: Some("http://h/".into()),
            ..McpServerConfig::default()
        };
        assert!(both.transport().is_err());
        assert!(McpServerConfig::default().transport().is_err());
        let file = McpServerConfig {
            url: Some("file:///etc/passwd".into()),
            ..McpServerConfig::default()
        };
        assert!(file.transport().unwrap_err().contains("http"));
        let missing = McpServerConfig {
            url: Some("http://h/".into()),
            bearer_token_env: Some("GLM_AGENT_TEST_TOKEN_THAT_IS_NOT_SET".into()),
            ..McpServerConfig::default()
        };
        assert!(missing.transport().unwrap_err().contains("not set"));
    }
}
