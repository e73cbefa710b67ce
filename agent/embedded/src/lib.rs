//! glm-engine-mistralrs: GLM-4 on mistral.rs, in this process.
//!
//! The only crate of glm-agent that names mistral.rs types. It holds:
//! - [`EmbeddedEngine`], the [`glm_engine::Engine`] that runs a model folder on mistral.rs with
//!   prefix caching, tokens picked by glm-agent's own sampler ([`picker`]). Requests run as
//!   concurrent sequences that mistral.rs batches; only a cache reset or a restart waits for the
//!   requests in flight;
//! - [`model`]: finding a model (a folder or a Hugging Face repo, downloaded into the hub cache)
//!   and mapping GLM-4 checkpoints once onto the Qwen2 layout that mistral.rs loads.
//!
//! One file per concern: `isq` (the quantisation policy), `config` (load options and the
//! model's shape), `kv` (where keys and values live), `overlay` (the folder mistral.rs loads), `load` (building the model), `book`
//! (the prefix-cache account), `engine` (requests), `stream` (the event stream), `decoder`.

mod book;
mod config;
mod decoder;
mod engine;
pub mod grammar;
mod isq;
mod kv;
mod load;
pub mod model;
mod overlay;
pub mod picker;
mod stream;

pub use config::{EmbeddedConfig, LoadReport};
pub use decoder::Decoder;
pub use engine::{EmbeddedEngine, EmbeddedStats};
pub use isq::{Isq, available_memory, choose_isq, isq_name, uses_gpu};
pub use kv::{Dtype, KvCache, gpu_memory, kv_bytes_per_token, tokens_held, uses_paged_attention};
/// mistral.rs's quantisation types.
pub use mistralrs::IsqType;
pub use overlay::overlay;
