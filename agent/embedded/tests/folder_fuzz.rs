//! Fuzzing model-folder loading: random `config.json` sizes and random safetensors headers
//! (dtypes, shapes, offsets that overlap, run backwards or past the file) never make reading
//! the folder or mapping it panic or ask for more memory than the file holds; they give a
//! mapped folder or an error that names the file.
//!
//! `PROPTEST_CASES=20000 cargo test --release -p glm-engine-mistralrs --test all -- folder_fuzz`
//! runs longer.

use glm_engine_mistralrs::model::st::read_header;
use glm_engine_mistralrs::model::{GlmShape, SourceLayout, prepare};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: glm_test_support::fuzz_cases(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A size as a hostile config writes it: plausible, zero, huge, negative or not a number.
fn size() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1u64..64).prop_map(|n| json!(n)),
        1 => Just(json!(0)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(1u64 << 40)),
        1 => Just(json!(-8)),
        1 => Just(json!(2.5)),
        1 => Just(json!("8")),
    ]
}

fn hf_config() -> impl Strategy<Value = Value> {
    (size(), size(), size(), size(), size(), size(), size()).prop_map(
        |(vocab, hidden, ffn, layers, heads, kv, head_dim)| {
            json!({"architectures": ["GlmForCausalLM"], "model_type": "glm",
                "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": ffn,
                "num_hidden_layers": layers, "num_attention_heads": heads,
                "num_key_value_heads": kv, "head_dim": head_dim, "partial_rotary_factor": 0.5})
        },
    )
}

/// One tensor entry: a name, a dtype (some unknown), a shape and offsets.
fn entry() -> impl Strategy<Value = (String, Value)> {
    (
        prop_oneof![
            Just("model.embed_tokens.weight".to_owned()),
            Just("model.norm.weight".to_owned()),
            Just("lm_head.weight".to_owned()),
            "[a-z._0-9]{1,24}",
        ],
        prop_oneof![
            Just("F32"),
            Just("BF16"),
            Just("F16"),
            Just("I8"),
            Just("Q9")
        ],
        proptest::collection::vec(
            prop_oneof![0u64..8, Just(u64::MAX / 2), Just(1u64 << 33)],
            0..3,
        ),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(name, dtype, shape, start, end)| {
            (
                name,
                json!({"dtype": dtype, "shape": shape,
                    "data_offsets": [u64::from(start % 4096), u64::from(end % 4096)]}),
            )
        })
}

/// A safetensors file: the header, then `data` bytes (which may not match it).
fn safetensors(entries: &[(String, Value)], data: usize) -> Vec<u8> {
    let header: serde_json::Map<String, Value> = entries.iter().cloned().collect();
    let header = serde_json::to_vec(&header).unwrap();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(std::iter::repeat_n(0u8, data));
    bytes
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_sizes_never_panic(config in hf_config()) {
        for layout in [SourceLayout::GlmHf, SourceLayout::ChatGlm] {
            let _ = GlmShape::from_config(&config, layout);
        }
        let _ = glm_engine_mistralrs::model::Dims::of(&config).params();
    }

    #[test]
    fn safetensors_headers_never_panic_or_overread(
        entries in proptest::collection::vec(entry(), 0..6),
        data in 0usize..4096,
        cut in proptest::option::of(0usize..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut bytes = safetensors(&entries, data);
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(tensors) = read_header(&path) {
            for info in tensors.values() {
                // Every tensor lies within the file: reading it never asks for more.
                prop_assert!(info.end >= info.start);
                prop_assert!(info.data_offset + info.end <= bytes.len() as u64);
                let _ = info.read();
            }
        }
    }

    #[test]
    fn whole_folders_map_or_fail_cleanly(
        config in hf_config(),
        entries in proptest::collection::vec(entry(), 0..6),
        data in 0usize..4096,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("model");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("config.json"), config.to_string()).unwrap();
        std::fs::write(
            source.join("tokenizer.json"),
            glm_prompts::tiny::tiny_tokenizer_json(),
        )
        .unwrap();
        std::fs::write(source.join("model.safetensors"), safetensors(&entries, data)).unwrap();
        let _ = prepare(&source, &dir.path().join("cache"), &mut |_, _| {});
    }
}
