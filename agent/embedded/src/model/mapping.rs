//! GLM-4-9B-Chat (`GlmForCausalLM`, or the original `ChatGLMModel`) -> the `Qwen2ForCausalLM`
//! layout, which mistral.rs loads.
//!
//! The two architectures differ only in the rotary embedding. GLM-4 rotates the first half of
//! each head in interleaved pairs (2j, 2j+1) with frequency base^(-j/32); Qwen2 rotates pairs
//! (i, i + d/2) with frequency theta^(-2i/d). With theta = base^2 Qwen2's pair i has GLM's
//! frequency for i < d/4, so permuting the rows of q and k inside each head (weights and biases)
//! turns one into the other: GLM dim 2j -> j, 2j+1 -> j + d/2 for the rotary pairs, and the
//! pass-through dims into the slowest pairs. The fused gate/up projection is split in two.

use serde_json::{Value, json};

use super::ModelError;
use super::st::{Planned, TensorInfo};

/// A source layout this module maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLayout {
    /// transformers' `GlmForCausalLM` (the `-hf` repos).
    GlmHf,
    /// The original `ChatGLMModel` (fused `query_key_value`, `transformer.*` names).
    ChatGlm,
}

/// The shape facts the mapping needs, read from the source config.
#[derive(Debug, Clone, PartialEq)]
pub struct GlmShape {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// FFN size.
    pub intermediate: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head size.
    pub head_dim: usize,
    /// Rotary base (10000 × rope_ratio).
    pub rope_base: f64,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Context length.
    pub max_positions: usize,
    /// Whether the output head shares the embedding.
    pub tie_embeddings: bool,
}

/// The config keys that hold sizes. Each, when present, must be a positive integer of a
/// plausible magnitude: a zero would divide by zero, a huge one ask for memory no machine has.
const SIZE_KEYS: &[&str] = &[
    "vocab_size",
    "padded_vocab_size",
    "hidden_size",
    "intermediate_size",
    "ffn_hidden_size",
    "num_hidden_layers",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "multi_query_group_num",
    "head_dim",
    "kv_channels",
    "max_position_embeddings",
    "seq_length",
];

fn check_sizes(config: &Value) -> Result<(), ModelError> {
    for key in SIZE_KEYS {
        let Some(value) = config.get(*key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        match value.as_u64() {
            Some(v) if (1..=1 << 31).contains(&v) => {}
            _ => {
                return Err(ModelError::Config(format!(
                    "config.json's {key} is {value}; it must be a positive size up to 2^31"
                )));
            }
        }
    }
    Ok(())
}

impl GlmShape {
    /// Reads a `GlmForCausalLM` or `ChatGLMModel` config.
    pub fn from_config(config: &Value, layout: SourceLayout) -> Result<GlmShape, ModelError> {
        check_sizes(config)?;
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| config[*k].as_u64())
                .map(|v| v as usize)
        };
        let need = |keys: &[&str]| {
            get(keys).ok_or_else(|| {
                ModelError::Config(format!("config.json lacks {}", keys.join(" / ")))
            })
        };
        let (heads, hidden) = (need(&["num_attention_heads"])?, need(&["hidden_size"])?);
        let dims = super::Dims::of(config);
        if dims.vocab == 0 {
            return Err(ModelError::Config(
                "config.json lacks padded_vocab_size / vocab_size".into(),
            ));
        }
        let shape = match layout {
            SourceLayout::GlmHf => {
                let params = &config["rope_parameters"];
                let base = config["rope_theta"]
                    .as_f64()
                    .or_else(|| params["rope_theta"].as_f64())
                    .unwrap_or(10_000.0);
                let partial = config["partial_rotary_factor"]
                    .as_f64()
                    .or_else(|| params["partial_rotary_factor"].as_f64())
                    .unwrap_or(0.5);
                if (partial - 0.5).abs() > 1e-9 {
                    return Err(ModelError::Config(format!(
                        "partial_rotary_factor is {partial}; only GLM-4's 0.5 maps onto Qwen2"
                    )));
                }
                GlmShape {
                    vocab: dims.vocab,
                    hidden,
                    intermediate: need(&["intermediate_size"])?,
                    layers: need(&["num_hidden_layers"])?,
                    heads,
                    kv_heads: get(&["num_key_value_heads"]).unwrap_or(heads),
                    head_dim: get(&["head_dim"]).unwrap_or(hidden / heads),
                    rope_base: base,
                    eps: config["rms_norm_eps"].as_f64().unwrap_or(1e-5),
                    max_positions: get(&["max_position_embeddings"]).unwrap_or(131_072),
                    tie_embeddings: config["tie_word_embeddings"].as_bool().unwrap_or(false),
                }
            }
            SourceLayout::ChatGlm => GlmShape {
                vocab: dims.vocab,
                hidden,
                intermediate: need(&["ffn_hidden_size"])?,
                layers: need(&["num_layers"])?,
                heads,
                kv_heads: if config["multi_query_attention"].as_bool().unwrap_or(true) {
                    get(&["multi_query_group_num"]).unwrap_or(heads)
                } else {
                    heads
                },
                head_dim: get(&["kv_channels"]).unwrap_or(hidden / heads),
                rope_base: 10_000.0 * config["rope_ratio"].as_f64().unwrap_or(1.0),
                eps: config["layernorm_epsilon"].as_f64().unwrap_or(1e-5),
                max_positions: get(&["seq_length"]).unwrap_or(131_072),
                tie_embeddings: false,
            },
        };
        if shape.head_dim * shape.heads != shape.hidden || shape.head_dim % 4 != 0 {
            return Err(ModelError::Config(format!(
                "head_dim {} × {} heads must equal hidden_size {} (Qwen2 derives head_dim from it)",
                shape.head_dim, shape.heads, shape.hidden
            )));
        }
        Ok(shape)
    }

    /// The `Qwen2ForCausalLM` config for the mapped weights.
    pub fn qwen2_config(&self, dtype: &str) -> Value {
        json!({
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": self.max_positions,
            "sliding_window": null,
            "use_sliding_window": false,
            "rope_theta": self.rope_base * self.rope_base,
            "rms_norm_eps": self.eps,
            "hidden_act": "silu",
            "tie_word_embeddings": self.tie_embeddings,
            "torch_dtype": match dtype { "BF16" => "bfloat16", "F16" => "float16", _ => "float32" },
        })
    }
}

/// Where GLM dim `g` of a head goes in the Qwen2 layout (`d` = head size).
pub fn qwen_index(g: usize, d: usize) -> usize {
    let (half, rotary) = (d / 2, d / 2);
    if g < rotary {
        if g.is_multiple_of(2) {
            g / 2
        } else {
            g / 2 + half
        }
    } else {
        let m = (g - rotary) / 2;
        if (g - rotary).is_multiple_of(2) {
            rotary / 2 + m
        } else {
            half + rotary / 2 + m
        }
    }
}

/// Reorders rows (each `row_bytes` long) inside every head of `d` rows.
fn permute_rows(bytes: &[u8], row_bytes: usize, d: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    let rows = bytes.len() / row_bytes.max(1);
    for row in 0..rows {
        let (head, g) = (row / d, row % d);
        let dest = head * d + qwen_index(g, d);
        out[dest * row_bytes..(dest + 1) * row_bytes]
            .copy_from_slice(&bytes[row * row_bytes..(row + 1) * row_bytes]);
    }
    out
}

/// The bytes of rows `from..to` of a 1-D or 2-D tensor.
fn rows(bytes: &[u8], row_bytes: usize, from: usize, to: usize) -> Vec<u8> {
    bytes[from * row_bytes..to * row_bytes].to_vec()
}

/// Source tensor names for one layout.
struct Names {
    embed: &'static str,
    norm: &'static str,
    head: &'static str,
}

fn names(layout: SourceLayout) -> Names {
    match layout {
        SourceLayout::GlmHf => Names {
            embed: "model.embed_tokens.weight",
            norm: "model.norm.weight",
            head: "lm_head.weight",
        },
        SourceLayout::ChatGlm => Names {
            embed: "transformer.embedding.word_embeddings.weight",
            norm: "transformer.encoder.final_layernorm.weight",
            head: "transformer.output_layer.weight",
        },
    }
}

/// Plans every output tensor of the mapped model.
pub fn plan<'a>(
    layout: SourceLayout,
    shape: &'a GlmShape,
    source: &'a std::collections::BTreeMap<String, TensorInfo>,
) -> Result<Vec<Planned<'a>>, ModelError> {
    let find = |name: &str| {
        source
            .get(name)
            .ok_or_else(|| ModelError::Config(format!("the checkpoint has no tensor {name}")))
    };
    let n = names(layout);
    let mut out = vec![copy("model.embed_tokens.weight", find(n.embed)?)?];
    let (d, q_rows, kv_rows) = (
        shape.head_dim,
        shape.heads * shape.head_dim,
        shape.kv_heads * shape.head_dim,
    );
    for i in 0..shape.layers {
        let dst = |s: &str| format!("model.layers.{i}.{s}");
        let src = |s: &str| match layout {
            SourceLayout::GlmHf => format!("model.layers.{i}.{s}"),
            SourceLayout::ChatGlm => format!("transformer.encoder.layers.{i}.{s}"),
        };
        for kind in ["weight", "bias"] {
            let attn = |part: &str| dst(&format!("self_attn.{part}.{kind}"));
            match layout {
                SourceLayout::GlmHf => {
                    for (part, head_dim) in
                        [("q_proj", Some(d)), ("k_proj", Some(d)), ("v_proj", None)]
                    {
                        let t = find(&src(&format!("self_attn.{part}.{kind}")))?;
                        out.push(slice(attn(part), t, 0, t.shape[0], head_dim)?);
                    }
                }
                SourceLayout::ChatGlm => {
                    let qkv = find(&src(&format!("self_attention.query_key_value.{kind}")))?;
                    out.push(slice(attn("q_proj"), qkv, 0, q_rows, Some(d))?);
                    out.push(slice(
                        attn("k_proj"),
                        qkv,
                        q_rows,
                        q_rows + kv_rows,
                        Some(d),
                    )?);
                    out.push(slice(
                        attn("v_proj"),
                        qkv,
                        q_rows + kv_rows,
                        q_rows + 2 * kv_rows,
                        None,
                    )?);
                }
            }
        }
        let (o, gate_up, down) = match layout {
            SourceLayout::GlmHf => ("self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"),
            SourceLayout::ChatGlm => (
                "self_attention.dense",
                "mlp.dense_h_to_4h",
                "mlp.dense_4h_to_h",
            ),
        };
        out.push(copy(
            &dst("self_attn.o_proj.weight"),
            find(&src(&format!("{o}.weight")))?,
        )?);
        let gate_up = find(&src(&format!("{gate_up}.weight")))?;
        let ffn = shape.intermediate;
        out.push(slice(dst("mlp.gate_proj.weight"), gate_up, 0, ffn, None)?);
        out.push(slice(
            dst("mlp.up_proj.weight"),
            gate_up,
            ffn,
            2 * ffn,
            None,
        )?);
        out.push(copy(
            &dst("mlp.down_proj.weight"),
            find(&src(&format!("{down}.weight")))?,
        )?);
        for norm in ["input_layernorm.weight", "post_attention_layernorm.weight"] {
            out.push(copy(&dst(norm), find(&src(norm))?)?);
        }
    }
    out.push(copy("model.norm.weight", find(n.norm)?)?);
    if !shape.tie_embeddings {
        out.push(copy("lm_head.weight", find(n.head)?)?);
    }
    Ok(out)
}

fn copy<'a>(name: &str, t: &'a TensorInfo) -> Result<Planned<'a>, ModelError> {
    Ok(Planned {
        name: name.to_owned(),
        dtype: t.dtype.clone(),
        shape: t.shape.clone(),
        bytes: t.end - t.start,
        produce: Box::new(move || t.read()),
    })
}

/// Rows `from..to` of `t` (the first dimension), permuted per head of `head_dim` when given.
fn slice(
    name: String,
    t: &TensorInfo,
    from: usize,
    to: usize,
    head_dim: Option<usize>,
) -> Result<Planned<'_>, ModelError> {
    let elem = t.elem_size()?;
    let row_elems: usize = t.shape.iter().skip(1).product();
    let row_bytes = row_elems * elem;
    if to > t.shape.first().copied().unwrap_or(0) {
        return Err(ModelError::Config(format!(
            "{name}: the source has {} rows, needs {to}",
            t.shape[0]
        )));
    }
    let mut shape = t.shape.clone();
    shape[0] = to - from;
    Ok(Planned {
        name,
        dtype: t.dtype.clone(),
        bytes: ((to - from) * row_bytes) as u64,
        shape,
        produce: Box::new(move || {
            let all = t.read()?;
            let part = rows(&all, row_bytes, from, to);
            Ok(match head_dim {
                Some(d) => permute_rows(&part, row_bytes, d),
                None => part,
            })
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_is_a_bijection_with_glm_pairs_on_qwen_pairs() {
        let d = 128;
        let mut seen = vec![false; d];
        for g in 0..d {
            let q = qwen_index(g, d);
            assert!(!seen[q]);
            seen[q] = true;
        }
        for j in 0..32 {
            assert_eq!(
                (qwen_index(2 * j, d), qwen_index(2 * j + 1, d)),
                (j, j + 64)
            );
        }
        for m in 0..32 {
            assert_eq!(
                (qwen_index(64 + 2 * m, d), qwen_index(65 + 2 * m, d)),
                (32 + m, 96 + m)
            );
        }
    }

    #[test]
    fn sizes_of_zero_or_absurd_magnitude_are_config_errors() {
        let config = serde_json::json!({"vocab_size": 151552, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 0});
        let err = GlmShape::from_config(&config, SourceLayout::GlmHf).unwrap_err();
        assert!(
            err.to_string().contains("num_attention_heads is 0"),
            "{err}"
        );
        let config = serde_json::json!({"vocab_size": 1u64 << 40, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4});
        let err = GlmShape::from_config(&config, SourceLayout::GlmHf).unwrap_err();
        assert!(err.to_string().contains("vocab_size"), "{err}");
        let config = serde_json::json!({"vocab_size": 151552, "hidden_size": -64,
            "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4});
        assert!(GlmShape::from_config(&config, SourceLayout::GlmHf).is_err());
    }
}
