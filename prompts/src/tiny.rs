//! A tiny byte-level tokenizer that keeps GLM-4-9B's control-token ids.
//!
//! Tests and examples use it where the real 151,552-token vocabulary is not available: every
//! byte is one token (ids 0..256) and the control tokens have their published ids, so prompts
//! encode exactly as the protocol requires.

use serde_json::{Map, Value, json};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::tokens::SpecialToken;

/// The vocabulary size a model must have to use [`tiny_tokenizer`] (the real GLM-4-9B size).
pub const TINY_VOCAB_SIZE: usize = 151_552;

/// The `tokenizer.json` text of the tiny tokenizer.
pub fn tiny_tokenizer_json() -> String {
    let mut vocab = Map::new();
    for (byte, ch) in byte_chars().into_iter().enumerate() {
        vocab.insert(ch.to_string(), json!(byte));
    }
    let mut added = Vec::new();
    for token in SpecialToken::ALL {
        vocab.insert(token.as_str().into(), json!(token.glm4_9b_id()));
        added.push(json!({
            "id": token.glm4_9b_id(), "content": token.as_str(), "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true
        }));
    }
    let byte_level = json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
    });
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": null,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": Value::Object(vocab), "merges": []
        }
    })
    .to_string()
}

/// The tiny tokenizer, ready to use.
pub fn tiny_tokenizer() -> Result<Tokenizer> {
    tiny_tokenizer_json()
        .parse::<Tokenizer>()
        .map_err(Error::Tokenizer)
}

/// GPT-2's byte-to-character table used by byte-level BPE: printable bytes map to themselves,
/// the rest to code points from U+0100 upwards.
pub(crate) fn byte_chars() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 256;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                let c = char::from_u32(next).unwrap_or('?');
                next += 1;
                c
            }
        })
        .collect()
}
