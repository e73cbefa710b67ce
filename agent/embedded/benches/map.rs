//! Mapping throughput: a GLM-4-9B-shaped checkpoint (real widths, bf16) -> the Qwen2 layout.
//!
//!     cargo bench -p glm-agent --bench map            # 1 layer; `-- --layers N` for more
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::Instant;

use glm_engine_mistralrs::model::st::{Planned, write_shards};
use glm_engine_mistralrs::model::{SourceLayout, detect, map_to_qwen2};
use serde_json::json;

fn main() {
    let layers: usize = std::env::args()
        .skip_while(|a| a != "--layers")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let (vocab, hidden, ffn, heads, kv) = (151_552usize, 4096usize, 13_696usize, 32usize, 4usize);
    let head_dim = hidden / heads;
    let dir = tempfile::tempdir_in(
        std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    let src = dir.path().join("glm-4-9b-shaped");
    std::fs::create_dir_all(&src).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, hidden])];
    for i in 0..layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        shapes.extend([
            (p("self_attn.q_proj.weight"), vec![heads * head_dim, hidden]),
            (p("self_attn.q_proj.bias"), vec![heads * head_dim]),
            (p("self_attn.k_proj.weight"), vec![kv * head_dim, hidden]),
            (p("self_attn.k_proj.bias"), vec![kv * head_dim]),
            (p("self_attn.v_proj.weight"), vec![kv * head_dim, hidden]),
            (p("self_attn.v_proj.bias"), vec![kv * head_dim]),
            (p("self_attn.o_proj.weight"), vec![hidden, heads * head_dim]),
            (p("mlp.gate_up_proj.weight"), vec![2 * ffn, hidden]),
            (p("mlp.down_proj.weight"), vec![hidden, ffn]),
            (p("input_layernorm.weight"), vec![hidden]),
            (p("post_attention_layernorm.weight"), vec![hidden]),
        ]);
    }
    shapes.push(("model.norm.weight".into(), vec![hidden]));
    shapes.push(("lm_head.weight".into(), vec![vocab, hidden]));
    let planned: Vec<Planned<'_>> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let bytes = shape.iter().product::<usize>() as u64 * 2;
            Planned {
                name,
                dtype: "BF16".into(),
                shape,
                bytes,
                produce: Box::new(move || Ok((0..bytes).map(|i| (i * 31 % 251) as u8).collect())),
            }
        })
        .collect();
    write_shards(&src, planned, 2 << 30, &mut |_| {}).unwrap();
    let config = json!({"architectures": ["GlmForCausalLM"], "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": head_dim, "partial_rotary_factor": 0.5, "rope_theta": 1e8});
    std::fs::write(src.join("config.json"), config.to_string()).unwrap();
    std::fs::write(src.join("tokenizer.json"), "{}").unwrap();
    let (_, config) = detect(&src).unwrap();
    let mut total = 0;
    let started = Instant::now();
    map_to_qwen2(
        &src,
        &dir.path().join("mapped"),
        SourceLayout::GlmHf,
        &config,
        &mut |_, t| total = t,
    )
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "mapped {layers} layer(s) at GLM-4-9B widths, bf16: {:.2} GB in {secs:.2} s = {:.2} GB/s",
        total as f64 / 1e9,
        total as f64 / 1e9 / secs
    );
}
