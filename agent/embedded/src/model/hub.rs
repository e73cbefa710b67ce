//! Models named by a Hugging Face repo id: found in the local Hugging Face cache, or downloaded
//! into it when downloads are allowed.

use std::path::{Path, PathBuf};

use hf_hub::api::tokio::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::ModelError;

/// The default model: GLM-4-9B-Chat-1M in its transformers layout.
pub const DEFAULT_MODEL: &str = "THUDM/glm-4-9b-chat-1m-hf";

/// Files a model folder needs besides its weights (missing optional ones are skipped).
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
const OPTIONAL: &[&str] = &["tokenizer_config.json", "generation_config.json"];
const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// Whether `spec` names a repo (`owner/name`) rather than a folder.
pub fn looks_like_repo(spec: &str) -> bool {
    let mut parts = spec.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None)
        if !a.is_empty() && !b.is_empty() && !spec.starts_with('.') && !spec.starts_with('~'))
}

fn cache_for(hf_home: Option<&Path>) -> Cache {
    match hf_home {
        Some(dir) => Cache::new(dir.join("hub")),
        None => Cache::from_env(),
    }
}

/// Whether an index's file name is a plain `NAME.safetensors` in the same folder: no separator,
/// no `..`, no leading dot, nothing but letters, digits, `-`, `_` and `.`.
fn plain_shard_name(name: &str) -> bool {
    name.len() <= 255
        && name.ends_with(".safetensors")
        && name.len() > ".safetensors".len()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The weight files named by a safetensors index.
fn shards_of(index: &Path) -> Result<Vec<String>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(ModelError::io(index))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: index.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files: Vec<String> = value["weight_map"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.dedup();
    if let Some(bad) = files.iter().find(|f| !plain_shard_name(f)) {
        return Err(ModelError::Format {
            path: index.to_path_buf(),
            message: format!(
                "the index names the weight file {bad:?}; only plain `*.safetensors` file names \
                 in the model's folder are taken"
            ),
        });
    }
    if files.is_empty() {
        return Err(ModelError::Format {
            path: index.to_path_buf(),
            message: "the index names no weight files".into(),
        });
    }
    Ok(files)
}

/// The folder of `repo` in the local Hugging Face cache, when every file it needs is there.
pub fn cached(repo: &str, hf_home: Option<&Path>) -> Option<PathBuf> {
    let cache = cache_for(hf_home).repo(Repo::new(repo.to_owned(), RepoType::Model));
    let config = cache.get("config.json")?;
    for f in REQUIRED {
        cache.get(f)?;
    }
    match cache.get(INDEX) {
        Some(index) => {
            for shard in shards_of(&index).ok()? {
                cache.get(&shard)?;
            }
        }
        None => {
            cache.get(SINGLE)?;
        }
    }
    config.parent().map(Path::to_path_buf)
}

/// Downloads `repo` into the Hugging Face cache (files already there are not fetched again) and
/// returns its folder. `endpoint` overrides `HF_ENDPOINT`; `progress` shows bars on stderr.
pub async fn download(
    repo: &str,
    hf_home: Option<&Path>,
    endpoint: Option<&str>,
    progress: bool,
) -> Result<PathBuf, ModelError> {
    let mut builder = match hf_home {
        Some(dir) => ApiBuilder::from_cache(Cache::new(dir.join("hub"))),
        None => ApiBuilder::from_env(),
    };
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()));
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder
        .with_progress(progress)
        .build()
        .map_err(|e| ModelError::Config(format!("cannot set up downloads: {e}")))?;
    let remote = api.model(repo.to_owned());
    let failed = |file: &str, e: hf_hub::api::tokio::ApiError| {
        ModelError::Unavailable(format!(
            "downloading {file} of {repo} failed: {e}. Check the repo id and your connection, or download it yourself (`hf download {repo}`) and pass the folder"
        ))
    };
    let config = remote
        .get("config.json")
        .await
        .map_err(|e| failed("config.json", e))?;
    for f in REQUIRED.iter().skip(1) {
        remote.get(f).await.map_err(|e| failed(f, e))?;
    }
    for f in OPTIONAL {
        let _ = remote.get(f).await;
    }
    match remote.get(INDEX).await {
        Ok(index) => {
            for shard in shards_of(&index)? {
                remote.get(&shard).await.map_err(|e| failed(&shard, e))?;
            }
        }
        Err(_) => {
            remote.get(SINGLE).await.map_err(|e| failed(SINGLE, e))?;
        }
    }
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ModelError::Config("the download has no folder".into()))
}

/// What is wrong with `spec`, a path that is not a model folder.
fn not_a_folder(spec: &str, path: &Path) -> String {
    let what = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => "is a file, not a model folder",
        Ok(_) => "cannot be read as a folder",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(_) => "cannot be read (check its permissions)",
    };
    format!(
        "{spec} {what}: pass the folder that holds the model's config.json and weights, or a Hugging Face repo id (owner/name)"
    )
}

/// Finds the folder for `spec`: an existing folder as it is; a repo id from the Hugging Face
/// cache, downloading it first unless `offline`.
pub async fn locate(
    spec: &str,
    offline: bool,
    hf_home: Option<&Path>,
    progress: bool,
) -> Result<PathBuf, ModelError> {
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return Ok(path);
    }
    if !looks_like_repo(spec) {
        return Err(ModelError::Config(not_a_folder(spec, &path)));
    }
    if let Some(dir) = cached(spec, hf_home) {
        return Ok(dir);
    }
    if offline {
        return Err(ModelError::Unavailable(format!(
            "{spec} is not in the Hugging Face cache ({}) and downloads are off (--offline, HF_HUB_OFFLINE or GLM_AGENT_OFFLINE). Download it on a connected machine with `hf download {spec}` (pip install huggingface_hub), or pass a local folder",
            cache_for(hf_home).path().display()
        )));
    }
    download(spec, hf_home, None, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_plain_file_names() {
        for ok in ["model-00001-of-00010.safetensors", "model.safetensors"] {
            assert!(plain_shard_name(ok), "{ok}");
        }
        for bad in [
            "/etc/passwd.safetensors",
            "../../x.safetensors",
            "a/b.safetensors",
            ".safetensors",
            ".hidden.safetensors",
            "model.bin",
            "a\\b.safetensors",
        ] {
            assert!(!plain_shard_name(bad), "{bad}");
        }
    }

    #[test]
    fn repo_ids_and_paths() {
        assert!(looks_like_repo("THUDM/glm-4-9b-chat-1m-hf"));
        assert!(!looks_like_repo("./models/x"));
        assert!(!looks_like_repo("/models/x"));
        assert!(!looks_like_repo("a/b/c"));
        assert!(!looks_like_repo("model"));
    }

    #[test]
    fn a_path_that_is_no_folder_is_named_as_such() {
        let dir = std::env::temp_dir().join(format!("glm-hub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let absent = dir.join("models/glm-4");
        let msg = not_a_folder("./models/glm-4", &absent);
        assert!(msg.starts_with("./models/glm-4 does not exist:"), "{msg}");
        let file = dir.join("weights.safetensors");
        std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(not_a_folder("w", &file).contains("is a file, not a model folder"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
