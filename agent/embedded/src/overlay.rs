//! The folder mistral.rs loads, and the sentinel token that closes every generation.

use std::path::{Path, PathBuf};

use glm_engine::{Cause, EngineError};
use serde_json::Value;

pub(crate) fn sentinel_for(tokenizer: &tokenizers::Tokenizer) -> Result<u32, EngineError> {
    // `[MASK]` is a GLM-4 control token that never follows an assistant turn.
    for name in ["[MASK]", "<|endoftext|>"] {
        if let Some(id) = tokenizer.token_to_id(name) {
            return Ok(id);
        }
    }
    Err(EngineError::new(
        Cause::Invalid,
        "the tokenizer has neither [MASK] nor <|endoftext|>: not a GLM-4 tokenizer",
    ))
}

/// The folder mistral.rs loads: links to the model's files, with the generation settings
/// rewritten so that the model's only end-of-sequence token is `sentinel`. The engine decides
/// where a generation stops (the picker closes it with the sentinel after a stop token), so
/// every real token, the stop token included, is run through the model and cached. Saved
/// quantised weights live here too, never in the user's model folder.
pub fn overlay(model_dir: &Path, work_dir: &Path, sentinel: u32) -> Result<PathBuf, EngineError> {
    use std::hash::{Hash, Hasher};
    let io = |what: &Path, e: std::io::Error| {
        EngineError::new(Cause::Invalid, format!("preparing {}: {e}", what.display()))
    };
    let source = std::fs::canonicalize(model_dir).map_err(|e| io(model_dir, e))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let dir = work_dir.join(format!("{name}-{:016x}", hasher.finish()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let rewritten = ["generation_config.json", "tokenizer_config.json"];
    for entry in std::fs::read_dir(&source).map_err(|e| io(&source, e))? {
        let entry = entry.map_err(|e| io(&source, e))?;
        let file_name = entry.file_name();
        let target = entry.path();
        if !target.is_file() || rewritten.iter().any(|r| file_name == *r) {
            continue;
        }
        // Made under a private name and renamed over the old link: loads can run at once.
        let link = dir.join(&file_name);
        let fresh = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&fresh);
        link_file(&target, &fresh).map_err(|e| io(&fresh, e))?;
        std::fs::rename(&fresh, &link).map_err(|e| io(&link, e))?;
    }
    let sentinel_text = "[MASK]";
    let generation = serde_json::json!({ "eos_token_id": [sentinel] });
    write_atomic(&dir.join("generation_config.json"), &generation.to_string())
        .map_err(|e| io(&dir, e))?;
    let mut tokenizer_config: Value = std::fs::read_to_string(source.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = tokenizer_config.as_object_mut() {
        map.insert("eos_token".into(), sentinel_text.into());
    }
    write_atomic(
        &dir.join("tokenizer_config.json"),
        &tokenizer_config.to_string(),
    )
    .map_err(|e| io(&dir, e))?;
    Ok(dir)
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let fresh = path.with_extension(format!(
        "{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&fresh, text)?;
    std::fs::rename(&fresh, path)
}

#[cfg(unix)]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::hard_link(target, link).or_else(|_| std::fs::copy(target, link).map(|_| ()))
}
