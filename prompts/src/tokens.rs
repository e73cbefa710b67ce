//! GLM-4's control tokens, and encoding rendered prompts to token ids.
//!
//! Only the renderer produces control tokens: every text segment is encoded with special-token
//! matching turned off, so a web page or a user message that contains `<|observation|>` stays
//! plain text.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::render::Segment;

/// The control tokens of the GLM-4 vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialToken {
    /// `<|endoftext|>`: end of text, a stop token.
    EndOfText,
    /// `[MASK]`.
    Mask,
    /// `[gMASK]`: first token of every prompt.
    GMask,
    /// `[sMASK]`.
    SMask,
    /// `<sop>`: second token of every prompt.
    Sop,
    /// `<eop>`.
    Eop,
    /// `<|system|>`.
    System,
    /// `<|user|>`: a stop token.
    User,
    /// `<|assistant|>`: not a stop token; the model may write it before a call.
    Assistant,
    /// `<|observation|>`: a stop token, written by the model after a call.
    Observation,
}

impl SpecialToken {
    /// Every control token, in vocabulary order.
    pub const ALL: [SpecialToken; 10] = [
        SpecialToken::EndOfText,
        SpecialToken::Mask,
        SpecialToken::GMask,
        SpecialToken::SMask,
        SpecialToken::Sop,
        SpecialToken::Eop,
        SpecialToken::System,
        SpecialToken::User,
        SpecialToken::Assistant,
        SpecialToken::Observation,
    ];

    /// The tokens that end a generation: `<|endoftext|>`, `<|user|>`, `<|observation|>`.
    pub const STOPS: [SpecialToken; 3] = [
        SpecialToken::EndOfText,
        SpecialToken::User,
        SpecialToken::Observation,
    ];

    /// The token's text, as the tokenizer spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialToken::EndOfText => "<|endoftext|>",
            SpecialToken::Mask => "[MASK]",
            SpecialToken::GMask => "[gMASK]",
            SpecialToken::SMask => "[sMASK]",
            SpecialToken::Sop => "<sop>",
            SpecialToken::Eop => "<eop>",
            SpecialToken::System => "<|system|>",
            SpecialToken::User => "<|user|>",
            SpecialToken::Assistant => "<|assistant|>",
            SpecialToken::Observation => "<|observation|>",
        }
    }

    /// The id GLM-4-9B's published vocabulary gives this token (151329..=151338). Runtime code
    /// reads ids from the model's tokenizer ([`SpecialIds::from_tokenizer`]); these are for
    /// building test tokenizers that keep the real ids.
    pub fn glm4_9b_id(self) -> u32 {
        151_329 + self.index() as u32
    }

    fn index(self) -> usize {
        match self {
            SpecialToken::EndOfText => 0,
            SpecialToken::Mask => 1,
            SpecialToken::GMask => 2,
            SpecialToken::SMask => 3,
            SpecialToken::Sop => 4,
            SpecialToken::Eop => 5,
            SpecialToken::System => 6,
            SpecialToken::User => 7,
            SpecialToken::Assistant => 8,
            SpecialToken::Observation => 9,
        }
    }
}

/// The ids a particular tokenizer gives the control tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    ids: [u32; 10],
}

impl SpecialIds {
    /// Looks every control token up in `tokenizer`.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let mut ids = [0; 10];
        let added = tokenizer.get_added_tokens_decoder();
        for token in SpecialToken::ALL {
            let id = tokenizer
                .token_to_id(token.as_str())
                .ok_or(Error::MissingControlToken {
                    token: token.as_str(),
                })?;
            // Special-token-free encoding of text holds only for tokens marked special: an
            // ordinary added token is still matched in text.
            if added.get(&id).is_some_and(|t| !t.special) {
                return Err(Error::ControlTokenNotSpecial {
                    token: token.as_str(),
                });
            }
            ids[token.index()] = id;
        }
        Ok(SpecialIds { ids })
    }

    /// GLM-4-9B's published ids, for when no tokenizer is at hand.
    pub fn glm4_9b() -> Self {
        let mut ids = [0; 10];
        for token in SpecialToken::ALL {
            ids[token.index()] = token.glm4_9b_id();
        }
        SpecialIds { ids }
    }

    /// The id of `token`.
    pub fn id(&self, token: SpecialToken) -> u32 {
        self.ids[token.index()]
    }

    /// The ids that end a generation.
    pub fn stop_ids(&self) -> Vec<u32> {
        SpecialToken::STOPS.iter().map(|t| self.id(*t)).collect()
    }

    /// The control token with this id, if any.
    pub fn token(&self, id: u32) -> Option<SpecialToken> {
        SpecialToken::ALL.into_iter().find(|t| self.id(*t) == id)
    }
}

/// Encodes rendered segments to token ids and decodes generated ids back to text.
#[derive(Debug, Clone)]
pub struct Encoder {
    tokenizer: Tokenizer,
    ids: SpecialIds,
}

impl Encoder {
    /// Wraps a GLM-4 tokenizer. Special-token matching is turned off for text segments.
    pub fn new(mut tokenizer: Tokenizer) -> Result<Self> {
        let ids = SpecialIds::from_tokenizer(&tokenizer)?;
        tokenizer.set_encode_special_tokens(true);
        Ok(Encoder { tokenizer, ids })
    }

    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|cause| Error::TokenizerFile {
            path: path.to_path_buf(),
            cause,
        })?;
        Encoder::new(tokenizer)
    }

    /// Whether `id` is a token of this tokenizer (control tokens included).
    pub fn knows(&self, id: u32) -> bool {
        self.tokenizer.id_to_token(id).is_some()
    }

    /// The control-token ids of this tokenizer.
    pub fn special_ids(&self) -> &SpecialIds {
        &self.ids
    }

    /// Encodes plain text; control-token spellings inside it stay text.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(Error::Tokenizer)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes segments: each control token to its id, each text segment separately.
    pub fn encode(&self, segments: &[Segment]) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for segment in segments {
            match segment {
                Segment::Control(token) => out.push(self.ids.id(*token)),
                Segment::Text(text) => out.extend(self.encode_text(text)?),
            }
        }
        Ok(out)
    }

    /// Decodes ids with control tokens kept visible, as the parser expects.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(Error::Tokenizer)
    }

    /// Every token's bytes, by id: what each token adds to the output, a part of a UTF-8
    /// character included (text decoding cannot show those). Byte-level vocabularies (GLM-4's)
    /// map back through GPT-2's byte table; others read `<0xNN>` as a byte and `\u{2581}` as a
    /// space; control tokens are their text.
    pub fn pieces(&self) -> Vec<(u32, Vec<u8>)> {
        use tokenizers::DecoderWrapper;
        let byte_level = matches!(
            self.tokenizer.get_decoder(),
            Some(DecoderWrapper::ByteLevel(_))
        );
        let table: HashMap<char, u8> = crate::tiny::byte_chars()
            .into_iter()
            .zip(0..=u8::MAX)
            .collect();
        let added: HashMap<u32, String> = self
            .tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, token)| (id, token.content))
            .collect();
        self.tokenizer
            .get_vocab(true)
            .into_iter()
            .map(|(token, id)| {
                let bytes = if added.contains_key(&id) {
                    token.into_bytes()
                } else if byte_level {
                    token
                        .chars()
                        .map(|c| table.get(&c).copied())
                        .collect::<Option<Vec<u8>>>()
                        .unwrap_or_else(|| token.into_bytes())
                } else {
                    sentencepiece_bytes(&token)
                };
                (id, bytes)
            })
            .collect()
    }
}

/// A SentencePiece token's bytes: `<0xNN>` is the byte NN, `\u{2581}` a space.
fn sentencepiece_bytes(token: &str) -> Vec<u8> {
    token
        .strip_prefix("<0x")
        .and_then(|rest| rest.strip_suffix('>'))
        .filter(|hex| hex.len() == 2)
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        .map_or_else(|| token.replace('\u{2581}', " ").into_bytes(), |b| vec![b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_token_not_marked_special_is_refused() {
        let json = crate::tiny::tiny_tokenizer_json();
        assert!(Encoder::new(json.parse::<Tokenizer>().unwrap()).is_ok());
        let forged = json.replacen("\"special\":true", "\"special\":false", 1);
        assert_ne!(forged, json);
        let err = Encoder::new(forged.parse::<Tokenizer>().unwrap()).unwrap_err();
        assert!(matches!(err, Error::ControlTokenNotSpecial { .. }), "{err}");
    }

    #[test]
    fn pieces_are_each_tokens_bytes() {
        let encoder = Encoder::new(crate::tiny::tiny_tokenizer().unwrap()).unwrap();
        let pieces: HashMap<u32, Vec<u8>> = encoder.pieces().into_iter().collect();
        // Every byte, the ones byte-level BPE spells with other characters too.
        for byte in 0..=u8::MAX {
            assert_eq!(pieces[&u32::from(byte)], vec![byte]);
        }
        let user = encoder.special_ids().id(SpecialToken::User);
        assert_eq!(pieces[&user], b"<|user|>");
        // The pieces of an encoding join to its text, a split character too.
        let text = "d\u{e9}j\u{e0} \u{1f600}";
        let ids = encoder.encode_text(text).unwrap();
        let joined: Vec<u8> = ids.iter().flat_map(|id| pieces[id].clone()).collect();
        assert_eq!(joined, text.as_bytes());
        assert_eq!(sentencepiece_bytes("<0xE4>"), vec![0xe4]);
        assert_eq!(sentencepiece_bytes("\u{2581}the"), b" the");
    }
}
