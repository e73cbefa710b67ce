//! Incremental decoding of generated ids.

use std::sync::Arc;

/// The most ids held back waiting for a character to complete (a UTF-8 character is at most
/// four bytes, each at most one byte-level token).
const MAX_HELD: usize = 8;

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
        } else if self.ids.len() - self.read >= MAX_HELD {
            // More ids than any character needs: they do not make valid text (a model writing
            // stray bytes). Sent as they decode, so a stream never stalls on them.
            let delta = self.decode(&self.ids[self.read..]);
            self.prefix = self.ids.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_bytes_never_hold_the_text_back_for_long() {
        let tokenizer = Arc::new(glm_prompts::tiny::tiny_tokenizer().unwrap());
        let id = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        // "é" is two byte tokens; its first byte alone, then plain text, is invalid UTF-8.
        let e = id("é");
        assert_eq!(e.len(), 2);
        let mut d = Decoder::new(tokenizer.clone());
        assert_eq!(d.push(e[0]), "");
        assert_eq!(d.push(e[1]), "é");
        let mut d = Decoder::new(tokenizer.clone());
        let mut out = d.push(e[0]);
        let mut longest_wait = 0;
        let mut waited = 0;
        for a in id("abcdefghijklmnop") {
            let piece = d.push(a);
            waited = if piece.is_empty() { waited + 1 } else { 0 };
            longest_wait = longest_wait.max(waited);
            out.push_str(&piece);
        }
        out.push_str(&d.flush());
        assert!(out.ends_with("abcdefghijklmnop"), "{out:?}");
        assert!(longest_wait < MAX_HELD, "{longest_wait}");
    }
}
