//! glm-engine-mistralrs: GLM-4 on mistral.rs, in this process.
//!
//! The only crate of glm-agent that names mistral.rs types. It holds:
//! - [`EmbeddedEngine`], the [`glm_engine::Engine`] that runs a model folder on mistral.rs with
//!   prefix caching, tokens picked by glm-agent's own sampler ([`picker`]);
//! - [`model`]: finding a model (a folder or a Hugging Face repo, downloaded into the hub cache)
//!   and mapping GLM-4 checkpoints once onto the Qwen2 layout that mistral.rs loads.

mod engine;
pub mod model;
pub mod picker;

pub use engine::{
    Decoder, EmbeddedConfig, EmbeddedEngine, EmbeddedStats, Isq, LoadReport, available_memory,
    choose_isq, isq_name, uses_gpu,
};
/// mistral.rs's quantisation types.
pub use mistralrs::IsqType;
