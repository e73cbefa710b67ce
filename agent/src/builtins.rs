//! The built-in tools, assembled from user settings.

use std::path::PathBuf;

use glm_tools::ToolRegistry;
use glm_tools::browser::{BrowserConfig, SearchChoice, SimpleBrowser};
use glm_tools::python::{Limits, PythonConfig, PythonTool};

use crate::error::{Error, Result};

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
}

/// A registry with the built-in tools named in `names` (all of them when `names` is empty).
pub fn builtin_registry(options: &BuiltinOptions, names: &[&str]) -> Result<ToolRegistry> {
    for name in names {
        if !BUILTIN_TOOLS.contains(name) {
            return Err(Error::UnknownTool {
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
            ..BrowserConfig::default()
        })
        .map_err(|e| Error::ToolSetup {
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
        }
    }
}
