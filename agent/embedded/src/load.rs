//! Building the mistral.rs model: dtype, prefix cache, paged attention on a GPU build,
//! quantisation and saved UQFF weights.

use std::path::{Path, PathBuf};

use glm_engine::{Cause, EngineError};
use mistralrs::{IsqType, Model, ModelDType, TextModelBuilder, Topology, UqffTextModelBuilder};

use crate::config::EmbeddedConfig;
use crate::isq::{isq_name, uses_gpu};
use crate::kv::{Dtype, PagedPool};

/// Builds a mistral.rs model, reading saved quantised weights when there are some. `down` is
/// the FFN down projection's type when it differs from `isq` (see
/// [`crate::isq::down_projection_isq`]).
pub(crate) async fn build(
    config: &EmbeddedConfig,
    dir: &Path,
    isq: Option<IsqType>,
    down: Option<IsqType>,
    paged: Option<PagedPool>,
) -> Result<(Model, bool), EngineError> {
    let id = dir.to_string_lossy().into_owned();
    let saved_name = |t: IsqType| match down {
        // Saved weights name both types, so weights saved with another down projection are
        // not read back as these.
        Some(d) => format!("{}-down-{}", isq_name(t), isq_name(d)),
        None => isq_name(t),
    };
    let saved = isq.map(|t| {
        let file = PathBuf::from("uqff").join(format!("{}-0.uqff", saved_name(t)));
        (t, dir.join(&file).exists(), file)
    });
    let mut builder = match &saved {
        Some((_, true, file)) => UqffTextModelBuilder::new(&id, vec![file.clone()]).into_inner(),
        _ => TextModelBuilder::new(&id),
    }
    .with_max_num_seqs(4);
    if !uses_gpu() {
        builder = builder.with_force_cpu();
    }
    builder = builder.with_dtype(match config.dtype.resolved() {
        Dtype::F16 => ModelDType::F16,
        Dtype::Bf16 => ModelDType::BF16,
        Dtype::F32 | Dtype::Auto => ModelDType::F32,
    });
    if let Some(pool) = paged {
        let paged = pool
            .config()
            .map_err(|m| EngineError::new(Cause::Invalid, m))?;
        builder = builder.with_paged_attn(paged);
    }
    builder = builder.with_prefix_cache_n(if config.prefix_cache { Some(16) } else { None });
    if config.verbose {
        builder = builder.with_logging();
    }
    let mut from_saved = false;
    match saved {
        Some((_, true, _)) => from_saved = true,
        Some((t, false, _)) => {
            builder = builder.with_isq(t);
            if let Some(d) = down {
                let topology = Topology::from_str(&format!(
                    "'/mlp\\.down_proj\\./':\n  isq: {}\n",
                    isq_name(d)
                ))
                .map_err(|e| {
                    EngineError::new(Cause::Invalid, format!("down projection type: {e:#}"))
                })?;
                builder = builder.with_topology(topology);
            }
            if config.save_quantized && std::fs::create_dir_all(dir.join("uqff")).is_ok() {
                builder =
                    builder.write_uqff(dir.join("uqff").join(format!("{}.uqff", saved_name(t))));
            }
        }
        None => {}
    }
    // mistral.rs 0.8.1 sets the quantisation of a load in a thread-local it never clears: a
    // full-precision load after a quantised one on this thread would be quantised too.
    mistralrs_quant::clear_immediate_isq();
    let model = builder.build().await;
    mistralrs_quant::clear_immediate_isq();
    let model = model.map_err(|e| {
        EngineError::new(
            Cause::Invalid,
            format!("mistral.rs could not load {}: {e:#}", dir.display()),
        )
    })?;
    Ok((model, from_saved))
}
