//! How to load the embedded engine, what loading decided, and the model's shape.

use std::path::{Path, PathBuf};

use glm_engine::{Cause, EngineError};
use serde_json::Value;
use std::time::Duration;

use crate::isq::Isq;
use crate::kv::{Dtype, KvCache, kv_bytes_per_token};

/// How to load the embedded engine.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// A loadable model folder (see [`crate::model::prepare`]).
    pub model_dir: PathBuf,
    /// Quantisation.
    pub isq: Isq,
    /// Keep quantised weights next to the model (UQFF) so the next load does not quantise again.
    pub save_quantized: bool,
    /// Reuse the keys and values of earlier requests that share a prefix.
    pub prefix_cache: bool,
    /// Bytes of keys and values the prefix cache may hold before it is cleared; `None` picks a
    /// quarter of the memory available at load time, between 256 MiB and 8 GiB.
    pub cache_budget: Option<u64>,
    /// Requests run at once, as sequences mistral.rs batches (default: 4 on a GPU build, 1 on
    /// CPU, where batched sequences measured slower than one at a time).
    pub max_sequences: usize,
    /// The activation dtype, which a CPU build keeps keys and values in.
    pub dtype: Dtype,
    /// The element type of the paged key/value cache of a GPU build (a CPU build refuses FP8).
    pub kv_cache: KvCache,
    /// Tokens of keys and values a GPU build allocates in its paged pool, shared by the
    /// sequences running at once (default: the model's window; a CPU build grows its cache with
    /// each sequence instead).
    pub context_tokens: Option<usize>,
    /// Let mistral.rs log its loading steps and progress bars to stderr.
    pub verbose: bool,
    /// Where the engine keeps its view of the model (see the `overlay` module) and saved quantised
    /// weights (default: `<cache dir>/engine`).
    pub work_dir: PathBuf,
}

impl EmbeddedConfig {
    /// Defaults for `model_dir`: automatic quantisation, UQFF saved, prefix cache on.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        let model_dir: PathBuf = model_dir.into();
        EmbeddedConfig {
            model_dir: model_dir.clone(),
            isq: Isq::Auto,
            save_quantized: true,
            prefix_cache: true,
            cache_budget: None,
            max_sequences: if crate::isq::uses_gpu() { 4 } else { 1 },
            dtype: Dtype::Auto,
            kv_cache: KvCache::Auto,
            context_tokens: None,
            verbose: false,
            // Without a cache folder, next to the model (never a shared temporary folder).
            work_dir: glm_engine::paths::cache_dir(None, |k| std::env::var(k).ok())
                .map_or_else(|| model_dir.join(".glm-agent-engine"), |c| c.join("engine")),
        }
    }
}

/// What loading decided, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The quantisation in effect (`None` for full precision).
    pub isq: Option<String>,
    /// The FFN down projection's quantisation when it differs from `isq` (a K-quant cannot hold
    /// a width that is not a multiple of 256).
    pub down_isq: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
    /// Whether quantised weights were read from a saved UQFF file.
    pub from_saved: bool,
    /// The prefix-cache budget in bytes (a GPU build: the paged pool's bytes).
    pub cache_budget: u64,
    /// The paged key/value pool of a GPU build: its tokens and element type (`bf16`, `f8e4m3`).
    pub paged: Option<(usize, &'static str)>,
    /// How long loading took.
    pub took: Duration,
}

/// Shape facts read from the model's config.json.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) vocab_size: usize,
    pub(crate) kv_bytes_per_token: u64,
    pub(crate) params: u64,
    /// Columns of the FFN down projection (`intermediate_size`).
    pub(crate) ffn: usize,
    /// The most positions the model was trained for, when config.json says.
    pub(crate) context: Option<usize>,
}

impl Shape {
    pub(crate) fn read(dir: &Path, kv: KvCache, dtype: Dtype) -> Result<Shape, EngineError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            EngineError::new(
                Cause::Invalid,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let c: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::new(Cause::Invalid, format!("{}: {e}", path.display())))?;
        let dims = crate::model::Dims::of(&c);
        if dims.vocab == 0 || dims.layers == 0 || dims.hidden == 0 {
            return Err(EngineError::new(
                Cause::Invalid,
                format!(
                    "{}: vocab_size, num_hidden_layers and hidden_size are required",
                    path.display()
                ),
            ));
        }
        Ok(Shape {
            vocab_size: dims.vocab,
            ffn: dims.ffn,
            kv_bytes_per_token: kv_bytes_per_token(
                dims.layers,
                dims.kv_heads(),
                dims.head_dim(),
                kv,
                dtype,
            ),
            params: dims.params(),
            context: ["max_position_embeddings", "seq_length"]
                .iter()
                .find_map(|k| c.get(*k).and_then(Value::as_u64))
                .filter(|&n| n > 0)
                .map(|n| n as usize),
        })
    }
}
