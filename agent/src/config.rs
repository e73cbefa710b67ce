//! Settings from a TOML file, overridden by environment variables, overridden by flags; each
//! value remembers where it came from (`glm-agent config show`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::Settings;
use crate::engine::Sampling;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Built in.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(k) => write!(f, "env {k}"),
            Source::Flag => write!(f, "flag"),
        }
    }
}

/// One known setting: its key, environment variable, default and meaning.
struct Key {
    name: &'static str,
    env: &'static str,
    default: fn() -> Value,
    help: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        name: "engine",
        env: "GLM_AGENT_ENGINE",
        default: || "embedded".into(),
        help: "embedded, openai:URL or replay:TRACE",
    },
    Key {
        name: "model",
        env: "GLM_AGENT_MODEL",
        default: || crate::model::hub::DEFAULT_MODEL.into(),
        help: "a local folder or a Hugging Face repo id",
    },
    Key {
        name: "isq",
        env: "GLM_AGENT_ISQ",
        default: || "auto".into(),
        help: "quantisation at load",
    },
    Key {
        name: "tools",
        env: "GLM_AGENT_TOOLS",
        default: || serde_json::json!(["python", "simple_browser"]),
        help: "tools offered to the model",
    },
    Key {
        name: "max_steps",
        env: "GLM_AGENT_MAX_STEPS",
        default: || 20.into(),
        help: "most model turns per run",
    },
    Key {
        name: "max_generated_tokens",
        env: "GLM_AGENT_MAX_TOKENS",
        default: || 32_768.into(),
        help: "most tokens generated per run",
    },
    Key {
        name: "max_step_tokens",
        env: "GLM_AGENT_MAX_STEP_TOKENS",
        default: || 4_096.into(),
        help: "most tokens per model turn",
    },
    Key {
        name: "time_limit_s",
        env: "GLM_AGENT_TIME_LIMIT",
        default: || Value::Null,
        help: "wall-clock limit per run, seconds",
    },
    Key {
        name: "tool_timeout_s",
        env: "GLM_AGENT_TOOL_TIMEOUT",
        default: || 60.into(),
        help: "limit per tool call, seconds",
    },
    Key {
        name: "temperature",
        env: "GLM_AGENT_TEMPERATURE",
        default: || 0.8.into(),
        help: "sampling temperature",
    },
    Key {
        name: "top_p",
        env: "GLM_AGENT_TOP_P",
        default: || 0.8.into(),
        help: "nucleus sampling mass",
    },
    Key {
        name: "seed",
        env: "GLM_AGENT_SEED",
        default: || Value::Null,
        help: "seed for reproducible sampling",
    },
    Key {
        name: "allow_hosts",
        env: "GLM_AGENT_ALLOW_HOSTS",
        default: || serde_json::json!([]),
        help: "private hosts the browser may reach",
    },
    Key {
        name: "search",
        env: "GLM_AGENT_SEARCH",
        default: || "duckduckgo".into(),
        help: "duckduckgo, searxng:URL or brave",
    },
    Key {
        name: "trace_dir",
        env: "GLM_AGENT_TRACE_DIR",
        default: default_trace_dir,
        help: "where run traces go",
    },
    Key {
        name: "system_prompt",
        env: "GLM_AGENT_SYSTEM_PROMPT",
        default: || Value::Null,
        help: "a system prompt rendered with the tools",
    },
];

fn default_trace_dir() -> Value {
    let base = std::env::var("XDG_STATE_HOME")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("glm-agent/traces").display().to_string().into()
}

/// The config file's path: `GLM_AGENT_CONFIG`, else `$XDG_CONFIG_HOME/glm-agent/config.toml`,
/// else `~/.config/glm-agent/config.toml`.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(p) = env("GLM_AGENT_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("glm-agent/config.toml")
}

/// The effective settings, each with its source.
#[derive(Debug, Clone)]
pub struct Layered {
    values: BTreeMap<&'static str, (Value, Source)>,
}

/// The typed run configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunConfig {
    /// The engine.
    pub engine: String,
    /// The model.
    pub model: String,
    /// Quantisation.
    pub isq: String,
    /// Tools offered.
    pub tools: Vec<String>,
    /// Most model turns.
    pub max_steps: usize,
    /// Most generated tokens.
    pub max_generated_tokens: usize,
    /// Most tokens per turn.
    pub max_step_tokens: u32,
    /// Wall-clock limit.
    pub time_limit_s: Option<u64>,
    /// Per-call limit.
    pub tool_timeout_s: u64,
    /// Temperature.
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
    /// Seed.
    pub seed: Option<u64>,
    /// Private hosts allowed.
    pub allow_hosts: Vec<String>,
    /// Search service for the browser.
    pub search: String,
    /// Trace folder.
    pub trace_dir: PathBuf,
    /// System prompt.
    pub system_prompt: Option<String>,
}

impl RunConfig {
    /// The agent settings.
    pub fn settings(&self) -> Settings {
        Settings {
            max_steps: self.max_steps,
            max_generated_tokens: self.max_generated_tokens,
            max_step_tokens: self.max_step_tokens,
            time_limit_s: self.time_limit_s,
            tool_timeout_s: self.tool_timeout_s,
            sampling: Sampling {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: None,
                seed: self.seed,
                greedy: self.temperature <= 0.0,
            },
            system_prompt: self.system_prompt.clone(),
            ..Settings::default()
        }
    }
}

/// Reads an environment value as the key's type: lists are comma separated, numbers parse,
/// `none` clears.
fn env_value(key: &Key, raw: &str) -> Value {
    let default = (key.default)();
    if raw.eq_ignore_ascii_case("none") {
        return Value::Null;
    }
    match default {
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => {
            if let Ok(n) = raw.parse::<i64>() {
                n.into()
            } else if let Ok(f) = raw.parse::<f64>() {
                f.into()
            } else {
                raw.into()
            }
        }
    }
}

impl Layered {
    /// Defaults, then the file at `path` (when it exists), then the environment.
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Layered, String> {
        let mut values = BTreeMap::new();
        for key in KEYS {
            values.insert(key.name, ((key.default)(), Source::Default));
        }
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for (k, v) in table {
                let Some(key) = KEYS.iter().find(|key| key.name == k) else {
                    return Err(format!(
                        "{}: unknown setting `{k}`; the settings are: {}",
                        path.display(),
                        KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
                    ));
                };
                let value = serde_json::to_value(v).map_err(|e| e.to_string())?;
                values.insert(key.name, (value, Source::File(path.to_path_buf())));
            }
        }
        for key in KEYS {
            if let Some(raw) = env(key.env).filter(|v| !v.is_empty()) {
                values.insert(
                    key.name,
                    (env_value(key, &raw), Source::Env(key.env.to_owned())),
                );
            }
        }
        let layered = Layered { values };
        layered.typed()?;
        Ok(layered)
    }

    /// Sets a value from a flag.
    pub fn flag(&mut self, name: &'static str, value: impl Into<Value>) {
        self.values.insert(name, (value.into(), Source::Flag));
    }

    /// The typed configuration; says which setting is wrong.
    pub fn typed(&self) -> Result<RunConfig, String> {
        let map: serde_json::Map<String, Value> = self
            .values
            .iter()
            .map(|(k, (v, _))| ((*k).to_owned(), v.clone()))
            .collect();
        serde_json::from_value(Value::Object(map)).map_err(|e| {
            let sources: Vec<String> = self
                .values
                .iter()
                .filter(|(_, (_, s))| *s != Source::Default)
                .map(|(k, (_, s))| format!("{k} ({s})"))
                .collect();
            format!(
                "invalid setting: {e} (set here: {})",
                if sources.is_empty() {
                    "none".to_owned()
                } else {
                    sources.join(", ")
                }
            )
        })
    }

    /// Every setting with its value, source and meaning, in a fixed order.
    pub fn rows(&self) -> Vec<(&'static str, Value, Source, &'static str)> {
        KEYS.iter()
            .map(|key| {
                let (v, s) = self.values[key.name].clone();
                (key.name, v, s, key.help)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "max_steps = 7\nmodel = \"/models/a\"\ntools = [\"python\"]\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "GLM_AGENT_MODEL" => Some("/models/b".to_owned()),
            "GLM_AGENT_ALLOW_HOSTS" => Some("a.internal, b.internal".to_owned()),
            _ => None,
        };
        let mut layered = Layered::load(&path, env).unwrap();
        let c = layered.typed().unwrap();
        assert_eq!(c.max_steps, 7);
        assert_eq!(c.model, "/models/b");
        assert_eq!(c.tools, vec!["python"]);
        assert_eq!(c.allow_hosts, vec!["a.internal", "b.internal"]);
        layered.flag("max_steps", 3);
        assert_eq!(layered.typed().unwrap().max_steps, 3);
        let rows = layered.rows();
        let source = |k: &str| rows.iter().find(|r| r.0 == k).unwrap().2.clone();
        assert_eq!(source("max_steps"), Source::Flag);
        assert_eq!(source("model"), Source::Env("GLM_AGENT_MODEL".into()));
        assert_eq!(source("tools"), Source::File(path.clone()));
        assert_eq!(source("isq"), Source::Default);
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "max_stepz = 7\n").unwrap();
        let err = Layered::load(&path, |_| None).unwrap_err();
        assert!(err.contains("unknown setting `max_stepz`"), "{err}");
        std::fs::write(&path, "max_steps = \"many\"\n").unwrap();
        let err = Layered::load(&path, |_| None).unwrap_err();
        assert!(err.contains("max_steps"), "{err}");
        std::fs::write(&path, "max_steps = [").unwrap();
        assert!(Layered::load(&path, |_| None).is_err());
        let env = |k: &str| (k == "GLM_AGENT_MAX_STEPS").then(|| "x".to_owned());
        let err = Layered::load(&dir.path().join("none.toml"), env).unwrap_err();
        assert!(err.contains("GLM_AGENT_MAX_STEPS"), "{err}");
    }
}
