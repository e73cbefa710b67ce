//! Incremental decoding of generated ids.

use std::sync::Arc;

/// Turns ids into text as they come, control tokens visible, never splitting a character.
pub struct Decoder {
    tokenizer: Arc<tokenizers::Tokenizer>,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl Decoder {
    /// A decoder with nothing decoded yet.
    pub fn new(tokenizer: Arc<tokenizers::Tokenizer>) -> Self {
        Decoder {
            tokenizer,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, false).unwrap_or_default()
    }

    /// Adds one id; returns the text it completes (empty while a character is still partial).
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let after = self.decode(&self.ids[self.prefix..]);
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.starts_with(&before)
        {
            let delta = after[before.len()..].to_owned();
            self.prefix = self.read;
            self.read = self.ids.len();
            delta
        } else {
            String::new()
        }
    }

    /// The text still held back (a partial character at the end).
    pub fn flush(&mut self) -> String {
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let after = self.decode(&self.ids[self.prefix..]);
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        after
            .strip_prefix(&before)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}
