//! Checkpoints for tests: tensors in memory written as a model folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;

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

/// Hidden size of the tiny GLM-4.
pub const HIDDEN: usize = 64;
/// Query heads.
pub const HEADS: usize = 4;
/// Key and value heads (grouped-query attention).
pub const KV_HEADS: usize = 2;
/// Size of one head.
pub const HEAD_DIM: usize = 16;
/// Size of the feed-forward layer.
pub const FFN: usize = 96;
/// Transformer layers.
pub const LAYERS: usize = 2;
/// GLM-4-9B-Chat-1M's rotary base: 10000 × rope_ratio 10000.
pub const BASE: f64 = 1e8;

/// The tensors of a tiny GlmForCausalLM checkpoint (GLM-4's layout in Hugging Face names: GQA,
/// QKV bias, fused gate and up projections) with a `vocab`-token vocabulary; deterministic.
pub fn glm4_hf_tensors(vocab: usize) -> Tensors {
    let mut t = Tensors::new();
    let mut seed = 1;
    let mut add = |name: String, shape: Vec<usize>, scale: f32| {
        seed += 1;
        let n = shape.iter().product();
        t.insert(name, (shape, weights(seed, n, scale)));
    };
    add("model.embed_tokens.weight".into(), vec![vocab, HIDDEN], 1.0);
    for i in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        add(
            p("self_attn.q_proj.weight"),
            vec![HEADS * HEAD_DIM, HIDDEN],
            0.3,
        );
        add(p("self_attn.q_proj.bias"), vec![HEADS * HEAD_DIM], 0.3);
        add(
            p("self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            0.3,
        );
        add(p("self_attn.k_proj.bias"), vec![KV_HEADS * HEAD_DIM], 0.3);
        add(
            p("self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            0.3,
        );
        add(p("self_attn.v_proj.bias"), vec![KV_HEADS * HEAD_DIM], 0.3);
        add(
            p("self_attn.o_proj.weight"),
            vec![HIDDEN, HEADS * HEAD_DIM],
            0.2,
        );
        add(p("mlp.gate_up_proj.weight"), vec![2 * FFN, HIDDEN], 0.2);
        add(p("mlp.down_proj.weight"), vec![HIDDEN, FFN], 0.2);
        add(p("input_layernorm.weight"), vec![HIDDEN], 1.0);
        add(p("post_attention_layernorm.weight"), vec![HIDDEN], 1.0);
    }
    add("model.norm.weight".into(), vec![HIDDEN], 1.0);
    add("lm_head.weight".into(), vec![vocab, HIDDEN], 0.5);
    t
}

/// The `config.json` of [`glm4_hf_tensors`]' checkpoint: partial rotary, GLM-4-9B-Chat-1M's
/// rotary base and context length.
pub fn glm4_hf_config(vocab: usize) -> serde_json::Value {
    json!({"architectures": ["GlmForCausalLM"], "model_type": "glm", "vocab_size": vocab, "hidden_size": HIDDEN,
           "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
           "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "partial_rotary_factor": 0.5,
           "rope_theta": BASE, "rms_norm_eps": 1e-5, "max_position_embeddings": 1_048_576,
           "attention_bias": true, "tie_word_embeddings": false})
}

/// The tiny GLM-4 checkpoint with the tiny tokenizer's vocabulary.
pub struct TinyGlm4 {
    /// Its folder, in the Hugging Face layout a user downloads.
    pub dir: PathBuf,
    /// Its tensors, for checks against a naive forward pass.
    pub tensors: Tensors,
}

/// Where tests map [`tiny_glm4`] for the embedded engine: one folder in the temporary folder
/// shared by test processes and runs (mapping writes beside its destination and renames it
/// into place), so no run leaves a copy behind.
pub fn shared_cache() -> PathBuf {
    std::env::temp_dir().join("glm-agent-tests-v1")
}

/// [`TinyGlm4`], written once into the temporary folder.
pub fn tiny_glm4() -> &'static TinyGlm4 {
    static MODEL: OnceLock<TinyGlm4> = OnceLock::new();
    MODEL.get_or_init(|| {
        let vocab = glm_prompts::tiny::TINY_VOCAB_SIZE;
        // The weights are the same in every process: one copy in the temporary folder, shared
        // by every test process and run (written beside it and renamed into place, so a reader
        // never sees half of it), instead of one left behind per process.
        let dir = std::env::temp_dir().join(format!("glm-4-tiny-v1-{vocab}"));
        let tensors = glm4_hf_tensors(vocab);
        if !dir.join("config.json").exists() {
            let partial = std::env::temp_dir().join(format!(
                ".glm-4-tiny-v1-{vocab}.{}.partial",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&partial);
            write_checkpoint(&partial, &tensors, glm4_hf_config(vocab));
            if std::fs::rename(&partial, &dir).is_err() {
                // Another process put its copy there first.
                let _ = std::fs::remove_dir_all(&partial);
            }
        }
        TinyGlm4 { dir, tensors }
    })
}
