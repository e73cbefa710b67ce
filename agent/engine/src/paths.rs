//! Where glm-agent keeps its files.

use std::path::PathBuf;

/// The cache directory: `flag`, else `GLM_AGENT_CACHE`, else `$XDG_CACHE_HOME/glm-agent`, else
/// `~/.cache/glm-agent`; `None` when none of them is set (there is no shared fallback: a folder
/// others can write would let them plant the compiled interpreter). `env` looks variables up.
pub fn cache_dir(flag: Option<PathBuf>, env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir);
    }
    if let Some(dir) = env("GLM_AGENT_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = env("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("glm-agent"))
}

/// What to do when [`cache_dir`] finds no folder.
pub const NO_CACHE_DIR: &str =
    "no cache folder: set GLM_AGENT_CACHE (or HOME or XDG_CACHE_HOME), or pass --cache-dir DIR";

/// Whether the model hub is off: [`downloads_off`], or `HF_HUB_OFFLINE` set to a true value.
pub fn offline(flag: bool, env: impl Fn(&str) -> Option<String>) -> bool {
    downloads_off(flag, &env) || truthy(env("HF_HUB_OFFLINE"))
}

/// Whether every download is off (the model's and the Python runtime's): `flag` (`--offline`)
/// or `GLM_AGENT_OFFLINE` set to a true value. `HF_HUB_OFFLINE` is about the model hub only.
pub fn downloads_off(flag: bool, env: impl Fn(&str) -> Option<String>) -> bool {
    flag || truthy(env("GLM_AGENT_OFFLINE"))
}

fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let env = |k: &str| match k {
            "GLM_AGENT_CACHE" => Some("/c".to_owned()),
            "XDG_CACHE_HOME" => Some("/x".to_owned()),
            "HOME" => Some("/h".to_owned()),
            _ => None,
        };
        assert_eq!(cache_dir(Some("/f".into()), env), Some(PathBuf::from("/f")));
        assert_eq!(cache_dir(None, env), Some(PathBuf::from("/c")));
        let no_cache = |k: &str| if k == "GLM_AGENT_CACHE" { None } else { env(k) };
        assert_eq!(
            cache_dir(None, no_cache),
            Some(PathBuf::from("/x/glm-agent"))
        );
        assert_eq!(cache_dir(None, |_| None), None);
        let home_only = |k: &str| {
            if k == "HOME" {
                Some("/h".to_owned())
            } else {
                None
            }
        };
        assert_eq!(
            cache_dir(None, home_only),
            Some(PathBuf::from("/h/.cache/glm-agent"))
        );
        assert!(offline(false, |k| (k == "HF_HUB_OFFLINE").then(|| "1".to_owned())));
        assert!(!offline(false, |_| Some("0".to_owned())));
        // HF_HUB_OFFLINE keeps the model hub off, not the Python runtime's download.
        assert!(!downloads_off(false, |k| (k == "HF_HUB_OFFLINE").then(|| "1".to_owned())));
        assert!(downloads_off(false, |k| (k == "GLM_AGENT_OFFLINE")
            .then(|| "yes".to_owned())));
        assert!(downloads_off(true, |_| None));
    }
}
