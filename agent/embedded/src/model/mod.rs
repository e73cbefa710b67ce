//! Model folders: detect the layout, and map GLM-4-9B-Chat checkpoints onto the Qwen2 layout
//! mistral.rs loads, once, into the cache directory.

pub mod hub;
mod mapping;
mod shape;
pub mod st;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use mapping::{GlmShape, SourceLayout, qwen_index};
pub use shape::{Dims, read_dims};

/// Model preparation failures.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The config or the tensors do not fit the layout.
    #[error("{0}")]
    Config(String),
    /// The model is not here and cannot be fetched now (a failed download, or offline): a
    /// failure of the engine's setup, not of the request.
    #[error("{0}")]
    Unavailable(String),
}

impl ModelError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
        let path = path.into();
        move |source| ModelError::Io { path, source }
    }
}

/// The layout of a model folder, from `config.json`'s `architectures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Mapped onto Qwen2 before loading.
    Mapped(SourceLayout),
    /// Loaded as it is (`Glm4ForCausalLM` and anything else mistral.rs knows).
    Native(String),
}

/// Reads a folder's layout.
pub fn detect(dir: &Path) -> Result<(Layout, Value), ModelError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(ModelError::io(&path))?;
    let config: Value = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let arch = config["architectures"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let layout = match arch.as_str() {
        "GlmForCausalLM" => Layout::Mapped(SourceLayout::GlmHf),
        "ChatGLMModel" | "ChatGLMForConditionalGeneration" => Layout::Mapped(SourceLayout::ChatGlm),
        _ => Layout::Native(arch),
    };
    Ok((layout, config))
}

/// Progress of a mapping, in bytes.
pub type MapProgress<'a> = &'a mut dyn FnMut(u64, u64);

/// Maps the GLM checkpoint in `source` into a Qwen2-layout folder `dest`. The work happens in
/// a sibling staging folder renamed into place at the end, so an interrupted mapping never
/// leaves a folder that loads.
pub fn map_to_qwen2(
    source: &Path,
    dest: &Path,
    layout: SourceLayout,
    config: &Value,
    progress: MapProgress<'_>,
) -> Result<(), ModelError> {
    let shape = GlmShape::from_config(config, layout)?;
    let tokenizer = source.join("tokenizer.json");
    if !tokenizer.exists() {
        return Err(ModelError::Config(format!(
            "{} has no tokenizer.json (the original ChatGLM layout ships only a tiktoken tokenizer.model); use the transformers layout, THUDM/glm-4-9b-chat-1m-hf, which has one",
            source.display()
        )));
    }
    let tensors = st::read_model(source)?;
    let dtype = tensors
        .values()
        .next()
        .map(|t| t.dtype.clone())
        .unwrap_or_else(|| "F32".into());
    let planned = mapping::plan(layout, &shape, &tensors)?;
    let total: u64 = planned.iter().map(|t| t.bytes).sum();
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(ModelError::io(parent))?;
    let staging = parent.join(format!(
        ".staging-{}-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(ModelError::io(&staging))?;
    let result = (|| {
        st::write_shards(&staging, planned, 2 << 30, &mut |done| {
            progress(done, total)
        })?;
        let config_path = staging.join("config.json");
        let text = serde_json::to_string_pretty(&shape.qwen2_config(&dtype)).unwrap_or_default();
        std::fs::write(&config_path, text).map_err(ModelError::io(&config_path))?;
        for extra in [
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            if source.join(extra).exists() {
                std::fs::copy(source.join(extra), staging.join(extra))
                    .map_err(ModelError::io(source.join(extra)))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&staging, dest).map_err(ModelError::io(dest))
}

/// A model folder ready for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The folder to load.
    pub dir: PathBuf,
    /// The source layout.
    pub layout: Layout,
    /// Whether this call did the mapping (false: reused from the cache, or loaded as is).
    pub mapped_now: bool,
}

/// Where a mapped copy of `source` lives in `cache`: named after the folder, keyed by its
/// config and weight files, so a changed checkpoint maps again.
pub fn mapped_dir(source: &Path, cache: &Path) -> Result<PathBuf, ModelError> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let config = std::fs::read(source.join("config.json"))
        .map_err(ModelError::io(source.join("config.json")))?;
    config.hash(&mut hasher);
    let mut files: Vec<(String, u64)> = std::fs::read_dir(source)
        .map_err(ModelError::io(source))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                // Follows links: Hugging Face cache snapshots link to blobs.
                std::fs::metadata(e.path()).map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    files.sort();
    files.hash(&mut hasher);
    // A Hugging Face cache snapshot (`models--org--name/snapshots/<commit>`) is named after
    // its repo.
    let in_hub_cache = source
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "snapshots");
    let named = if in_hub_cache {
        source.parent().and_then(|p| p.parent())
    } else {
        Some(source)
    };
    let name = named
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map(|n| n.strip_prefix("models--").unwrap_or(n).replace("--", "-"))
        .unwrap_or_else(|| "model".to_owned());
    Ok(cache
        .join("models")
        .join(format!("{name}-qwen2-{:016x}", hasher.finish())))
}

/// Makes a local model folder loadable: GLM-4-9B-Chat layouts are mapped once into `cache`
/// (`progress(done, total)` in bytes); other layouts are used as they are.
pub fn prepare(
    source: &Path,
    cache: &Path,
    progress: MapProgress<'_>,
) -> Result<Prepared, ModelError> {
    let (layout, config) = detect(source)?;
    let Layout::Mapped(src_layout) = layout.clone() else {
        return Ok(Prepared {
            dir: source.to_path_buf(),
            layout,
            mapped_now: false,
        });
    };
    let dest = mapped_dir(source, cache)?;
    if dest.join("config.json").exists() {
        return Ok(Prepared {
            dir: dest,
            layout,
            mapped_now: false,
        });
    }
    map_to_qwen2(source, &dest, src_layout, &config, progress)?;
    Ok(Prepared {
        dir: dest,
        layout,
        mapped_now: true,
    })
}

/// What identifies a model folder in a trace: its path, the SHA-256 of its config.json and
/// tokenizer.json, and its weight files with their sizes (hashing gigabytes of weights at every
/// start would cost more than it tells).
pub fn fingerprint(dir: &Path) -> Value {
    use sha2::{Digest, Sha256};
    let hash = |name: &str| {
        std::fs::read(dir.join(name))
            .ok()
            .map(|bytes| hex::encode(Sha256::digest(&bytes)))
    };
    let mut weights: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::metadata(e.path()).map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    weights.sort();
    serde_json::json!({
        "folder": dir.display().to_string(),
        "config_sha256": hash("config.json"),
        "tokenizer_sha256": hash("tokenizer.json"),
        "weights": weights.iter().map(|(f, b)| serde_json::json!({"file": f, "bytes": b})).collect::<Vec<_>>(),
    })
}
