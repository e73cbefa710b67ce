//! Checkpoints for tests: tensors in memory written as a model folder.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, tensor::TensorView};

/// Tensors by name: shape and f32 values.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// `n` deterministic pseudo-random values in `[-scale, scale)`.
pub fn weights(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Writes `dir/model.safetensors` (f32), `dir/config.json` and the tiny GLM-4 tokenizer.
pub fn write_checkpoint(dir: &Path, tensors: &Tensors, config: serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, d))| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        glm_prompts::tiny::tiny_tokenizer_json(),
    )
    .unwrap();
}
