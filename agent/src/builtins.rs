//! The built-in tools, assembled from user settings.

use glm_tools::ToolRegistry;
use glm_tools::browser::{BrowserConfig, SearchChoice, SimpleBrowser};

use crate::error::{Error, Result};

/// Names of the built-in tools.
pub const BUILTIN_TOOLS: [&str; 1] = ["simple_browser"];

/// What the built-in tools need to know.
#[derive(Debug, Clone, Default)]
pub struct BuiltinOptions {
    /// Hosts the browser may reach even though they are not public.
    pub allow_hosts: Vec<String>,
    /// The search service.
    pub search: SearchChoice,
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
    Ok(registry)
}
