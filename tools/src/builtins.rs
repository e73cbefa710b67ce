//! The built-in tools (`python`, `simple_browser`), assembled from user settings.

use std::path::PathBuf;

use crate::ToolRegistry;
use crate::browser::{BrowserConfig, SearchChoice, SimpleBrowser};
use crate::python::{Limits, PythonConfig, PythonTool};

/// Why the built-in tools cannot be assembled; both are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// A tool name that is not built in.
    #[error("unknown tool `{name}`; available: {available}")]
    UnknownTool {
        /// The name asked for.
        name: String,
        /// What exists.
        available: String,
    },
    /// A tool could not be set up.
    #[error("cannot set up `{tool}`: {message}")]
    ToolSetup {
        /// The name of the tool.
        tool: &'static str,
        /// What failed.
        message: String,
    },
}

/// Names of the built-in tools.
pub const BUILTIN_TOOLS: [&str; 2] = ["python", "simple_browser"];

/// What the built-in tools need to know.
#[derive(Debug, Clone)]
pub struct BuiltinOptions {
    /// Hosts the browser may reach even though they are not public.
    pub allow_hosts: Vec<String>,
    /// The search service.
    pub search: SearchChoice,
    /// The cache directory (the Python runtime lives there).
    pub cache: PathBuf,
    /// Never download (the Python runtime must already be installed).
    pub offline: bool,
    /// Limits of the Python sandbox.
    pub python_limits: Limits,
    /// Characters of a page the browser shows at once.
    pub page_chars: usize,
}

/// A registry with the built-in tools named in `names` (all of them when `names` is empty).
pub fn builtin_registry(
    options: &BuiltinOptions,
    names: &[&str],
) -> Result<ToolRegistry, BuiltinError> {
    for name in names {
        if !BUILTIN_TOOLS.contains(name) {
            return Err(BuiltinError::UnknownTool {
                name: (*name).to_owned(),
                available: BUILTIN_TOOLS.join(", "),
            });
        }
    }
    let wanted = |name: &str| names.is_empty() || names.contains(&name);
    let mut registry = ToolRegistry::new();
    if wanted("simple_browser") {
        let browser = SimpleBrowser::new(BrowserConfig {
            allow_hosts: options.allow_hosts.clone(),
            search: options.search.clone(),
            max_page_chars: options.page_chars,
            ..BrowserConfig::default()
        })
        .map_err(|e| BuiltinError::ToolSetup {
            tool: "simple_browser",
            message: e.to_string(),
        })?;
        registry.register(browser);
    }
    if wanted("python") {
        registry.register(PythonTool::new(PythonConfig {
            cache: options.cache.clone(),
            offline: options.offline,
            limits: options.python_limits.clone(),
        }));
    }
    Ok(registry)
}

impl BuiltinOptions {
    /// Defaults with the given cache directory.
    pub fn new(cache: PathBuf) -> Self {
        BuiltinOptions {
            allow_hosts: Vec::new(),
            search: SearchChoice::default(),
            cache,
            offline: false,
            python_limits: Limits::default(),
            page_chars: BrowserConfig::default().max_page_chars,
        }
    }
}
