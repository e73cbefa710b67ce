//! Settings: one typed struct per concern, each defined once (the [`concern!`] macro derives
//! its flags, its config-file keys, its environment variables and its defaults), merged the
//! same way for every command: defaults, then the config file, then the environment, then
//! flags. Each value remembers where it came from (`glm-agent config show`).
//!
//! The config file is one flat TOML table whose keys are the fields of every concern, plus the
//! named tables a command reads itself (`[mcp_servers.NAME]`); an unknown key is an error that
//! names it and lists the known ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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

/// A setting that cannot be read, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The config file cannot be read or is not TOML.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key no concern knows.
    #[error("{}: unknown setting `{key}`; the settings are: {known}", path.display())]
    Unknown {
        /// The file.
        path: PathBuf,
        key: String,
        /// Every known key.
        known: String,
    },
    /// A value of the wrong type.
    #[error("invalid setting `{key}` ({source_}): {message}")]
    Invalid {
        key: String,
        /// Where the value came from.
        source_: Source,
        /// What is wrong.
        message: String,
    },
}

/// Keys that were renamed to match their flags: the old name, the new.
const RENAMED: [(&str, &str); 4] = [
    ("max_generated_tokens", "max_tokens"),
    ("time_limit_s", "time_limit"),
    ("tool_timeout_s", "tool_timeout"),
    ("allow_hosts", "allow_host"),
];

/// `key` under its current name; an old name is still read, with a warning naming the new.
fn renamed(path: &Path, key: String) -> String {
    match RENAMED.iter().find(|(old, _)| *old == key) {
        Some((old, new)) => {
            eprintln!(
                "warning: {}: `{old}` is now `{new}` (the flag's name); the old name is still read",
                path.display()
            );
            (*new).to_owned()
        }
        None => key,
    }
}

/// Tables whose keys are settings of the flat table, written grouped: `[approval]` with `mode`
/// (the `approval` setting), `allow` and `deny`.
const SPREAD: &[(&str, &[(&str, &str)])] = &[(
    "approval",
    &[("mode", "approval"), ("allow", "allow"), ("deny", "deny")],
)];

/// `table` with the grouped tables of [`SPREAD`] spread into it; an unknown key inside one is
/// an error that names it.
fn spread_tables(path: &Path, table: toml::Table) -> Result<toml::Table, SettingsError> {
    let mut out = toml::Table::new();
    for (key, value) in table {
        let spread = SPREAD.iter().find(|(name, _)| *name == key);
        let (Some((name, keys)), toml::Value::Table(inner)) = (spread, &value) else {
            out.insert(key, value);
            continue;
        };
        for (inner_key, inner_value) in inner {
            let Some((_, flat)) = keys.iter().find(|(k, _)| k == inner_key) else {
                return Err(SettingsError::Unknown {
                    path: path.to_path_buf(),
                    key: format!("{name}.{inner_key}"),
                    known: keys
                        .iter()
                        .map(|(k, _)| format!("{name}.{k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            out.insert((*flat).to_owned(), inner_value.clone());
        }
    }
    Ok(out)
}

/// One concern's settings: a struct whose fields are all optional (unset at a layer).
pub trait Concern: Default + Clone + Serialize + DeserializeOwned {
    /// Each key with its environment variable and meaning.
    const KEYS: &'static [Key];
    /// The built-in values.
    fn defaults() -> Self;
    /// Takes every field `over` sets, recording `source` for it.
    fn merge(&mut self, over: Self, source: &Source, sources: &mut BTreeMap<&'static str, Source>);
}

/// A known setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The config-file key (and field name).
    pub name: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// Defines a concern: `field: Type = default, env "VAR", "help";` per setting, each field with
/// its clap attributes. The struct derives clap's `Args` (the help text is the field's doc) and
/// serde; fields are `Option`s, `None` meaning "not set at this layer".
macro_rules! concern {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$arg:meta])*
                $field:ident : $ty:ty = $default:expr, env $env:literal, $help:literal;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                #[doc = $help]
                $(#[$arg])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl $crate::settings::Concern for $name {
            const KEYS: &'static [$crate::settings::Key] = &[
                $($crate::settings::Key { name: stringify!($field), env: $env, help: $help },)*
            ];

            fn defaults() -> Self {
                $name { $($field: $default,)* }
            }

            fn merge(
                &mut self,
                over: Self,
                source: &$crate::settings::Source,
                sources: &mut std::collections::BTreeMap<&'static str, $crate::settings::Source>,
            ) {
                $(
                    if over.$field.is_some() {
                        self.$field = over.$field;
                        sources.insert(stringify!($field), source.clone());
                    }
                )*
            }
        }
    };
}

pub(crate) use concern;

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

/// Looks an environment variable up.
type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// The layers below the flags: the config file's table (checked against every known key) and
/// the environment.
pub struct Layers {
    path: PathBuf,
    file: Map<String, Value>,
    tables: Map<String, Value>,
    env: EnvLookup,
}

impl Layers {
    /// Reads the config file at `path` (absent is fine) and checks its keys against `known`
    /// and the names of `tables`.
    pub fn load(
        path: &Path,
        known: &[&[Key]],
        tables: &[&str],
        env: impl Fn(&str) -> Option<String> + 'static,
    ) -> Result<Layers, SettingsError> {
        let file_error = |message: String| SettingsError::File {
            path: path.to_path_buf(),
            message,
        };
        let mut file = Map::new();
        let mut named = Map::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
            let table: toml::Table = text.parse().map_err(|e| file_error(format!("{e}")))?;
            for (key, value) in spread_tables(path, table)? {
                let key = renamed(path, key);
                if tables.contains(&key.as_str()) {
                    let value =
                        serde_json::to_value(value).map_err(|e| file_error(e.to_string()))?;
                    named.insert(key, value);
                    continue;
                }
                if !known.iter().any(|keys| keys.iter().any(|k| k.name == key)) {
                    let mut names: Vec<&str> = known
                        .iter()
                        .flat_map(|k| k.iter().map(|k| k.name))
                        .collect();
                    names.extend(tables.iter().copied());
                    return Err(SettingsError::Unknown {
                        path: path.to_path_buf(),
                        key,
                        known: names.join(", "),
                    });
                }
                let value = serde_json::to_value(value).map_err(|e| file_error(e.to_string()))?;
                file.insert(key, value);
            }
        }
        Ok(Layers {
            path: path.to_path_buf(),
            file,
            tables: named,
            env: Box::new(env),
        })
    }

    /// A named table of the config file (`[mcp_servers.NAME]`), read as `T`.
    pub fn table<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, SettingsError> {
        let Some(value) = self.tables.get(name) else {
            return Ok(None);
        };
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| SettingsError::File {
                path: self.path.clone(),
                message: format!("[{name}]: {e}"),
            })
    }

    /// The config file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One concern, merged: defaults, file, environment, then `flags`.
    pub fn resolve<T: Concern>(&self, flags: T) -> Result<Layered<T>, SettingsError> {
        let mut sources = BTreeMap::new();
        let mut value = T::default();
        value.merge(T::defaults(), &Source::Default, &mut sources);
        let file_source = Source::File(self.path.clone());
        for key in T::KEYS {
            if let Some(v) = self.file.get(key.name) {
                let layer = one::<T>(key.name, v.clone(), &file_source)?;
                value.merge(layer, &file_source, &mut sources);
            }
        }
        for key in T::KEYS {
            let Some(raw) = (self.env)(key.env).filter(|v| !v.is_empty()) else {
                continue;
            };
            let source = Source::Env(key.env.to_owned());
            let layer = env_layer::<T>(key.name, &raw, &source)?;
            value.merge(layer, &source, &mut sources);
        }
        value.merge(flags, &Source::Flag, &mut sources);
        Ok(Layered { value, sources })
    }
}

/// A layer setting one key.
fn one<T: Concern>(key: &str, value: Value, source: &Source) -> Result<T, SettingsError> {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    serde_json::from_value(Value::Object(map)).map_err(|e| SettingsError::Invalid {
        key: key.to_owned(),
        source_: source.clone(),
        message: e.to_string(),
    })
}

/// A layer from an environment value: a number, a string, or a comma-separated list,
/// whichever the key's type takes.
fn env_layer<T: Concern>(key: &str, raw: &str, source: &Source) -> Result<T, SettingsError> {
    let mut candidates = Vec::new();
    if let Ok(n) = raw.parse::<i64>() {
        candidates.push(Value::from(n));
    } else if let Ok(f) = raw.parse::<f64>() {
        candidates.push(Value::from(f));
    }
    candidates.push(Value::from(raw));
    if raw.eq_ignore_ascii_case("true") || raw.eq_ignore_ascii_case("false") {
        candidates.push(Value::from(raw.eq_ignore_ascii_case("true")));
    }
    candidates.push(Value::Array(
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Value::from)
            .collect(),
    ));
    let mut first_error = None;
    for candidate in candidates {
        match one::<T>(key, candidate, source) {
            Ok(layer) => return Ok(layer),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| SettingsError::Invalid {
        key: key.to_owned(),
        source_: source.clone(),
        message: "no value".into(),
    }))
}

/// A concern's effective values with the source of each.
#[derive(Debug, Clone)]
pub struct Layered<T> {
    /// The values (every field with a default is set).
    pub value: T,
    /// Where each set field came from.
    pub sources: BTreeMap<&'static str, Source>,
}

/// `value` with a number that came from an `f32` written as that `f32` prints (`0.8`, not
/// `0.800000011920929`).
pub fn shortest(value: &Value) -> Value {
    match value.as_f64() {
        Some(x) if value.is_f64() && f64::from(x as f32) == x => {
            serde_json::from_str(&(x as f32).to_string()).unwrap_or_else(|_| value.clone())
        }
        _ => value.clone(),
    }
}

impl<T: Concern> Layered<T> {
    /// Every key with its value, source and meaning, in the concern's order.
    pub fn rows(&self) -> Vec<(&'static str, Value, Source, &'static str)> {
        let values = serde_json::to_value(&self.value).unwrap_or_default();
        T::KEYS
            .iter()
            .map(|key| {
                let value = values.get(key.name).map_or(Value::Null, shortest);
                let source = self
                    .sources
                    .get(key.name)
                    .cloned()
                    .unwrap_or(Source::Default);
                (key.name, value, source, key.help)
            })
            .collect()
    }
}
