//! A model's dimensions from its `config.json`, read one way for every layout: the mapping and
//! the engine both use [`Dims`].

use serde_json::Value;

/// The dimensions a config states (0 or `None` when it does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Rows of the embedding: `padded_vocab_size` (ChatGLM, where it is the real row count),
    /// else `vocab_size`.
    pub vocab: usize,
    /// `hidden_size`.
    pub hidden: usize,
    /// `num_attention_heads`.
    pub heads: usize,
    /// `num_key_value_heads`, else `multi_query_group_num`.
    pub kv_heads: Option<usize>,
    /// `head_dim`, else `kv_channels`.
    pub head_dim: Option<usize>,
    /// `num_hidden_layers`, else `num_layers`.
    pub layers: usize,
    /// `intermediate_size`, else `ffn_hidden_size`.
    pub ffn: usize,
}

impl Dims {
    /// Reads the dimensions of any config this crate knows.
    pub fn of(config: &Value) -> Dims {
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| config[*k].as_u64())
                .map(|v| v as usize)
        };
        Dims {
            vocab: get(&["padded_vocab_size", "vocab_size"]).unwrap_or(0),
            hidden: get(&["hidden_size"]).unwrap_or(0),
            heads: get(&["num_attention_heads"]).unwrap_or(0),
            kv_heads: get(&["num_key_value_heads", "multi_query_group_num"]),
            head_dim: get(&["head_dim", "kv_channels"]),
            layers: get(&["num_hidden_layers", "num_layers"]).unwrap_or(0),
            ffn: get(&["intermediate_size", "ffn_hidden_size"]).unwrap_or(0),
        }
    }

    /// Key/value heads (all heads when the config does not group them).
    pub fn kv_heads(&self) -> usize {
        self.kv_heads.unwrap_or(self.heads.max(1))
    }

    /// Size of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden / self.heads.max(1))
    }

    /// About how many parameters the model has (attention, MLP, embedding and output head).
    pub fn params(&self) -> u64 {
        let (hidden, heads, kv) = (
            self.hidden as u64,
            self.heads as u64,
            self.kv_heads() as u64,
        );
        let head_dim = self.head_dim() as u64;
        let per_layer = hidden * heads * head_dim * 2
            + hidden * kv * head_dim * 2
            + 3 * hidden * self.ffn as u64;
        self.layers as u64 * per_layer + 2 * self.vocab as u64 * hidden
    }

    /// The size in words: `9.4B`, `150M`, `12K` parameters.
    pub fn size_words(&self) -> String {
        let p = self.params() as f64;
        if p >= 1e9 {
            format!("{:.1}B", p / 1e9)
        } else if p >= 1e6 {
            format!("{:.0}M", p / 1e6)
        } else {
            format!("{:.0}K", p / 1e3)
        }
    }
}

/// The dimensions of the model in `dir`, when its config.json reads.
pub fn read_dims(dir: &std::path::Path) -> Option<Dims> {
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    Some(Dims::of(&config))
}
