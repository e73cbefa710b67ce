//! The bytes of each token, to recover the ids a server holds back.
//!
//! llama.cpp's server does not send a token whose text ends inside a UTF-8 character: it waits
//! for the next token and sends the joined text with the new token's id only. Its chunk's
//! `tokens_predicted` still counts the held token, so the loss is seen; the held ids are the
//! tokens whose bytes make up the text before the new tokens' bytes. They are taken only when
//! one split of those bytes into that many tokens exists: ids that are not the model's are
//! never made up.

use std::collections::HashMap;

/// Every token's bytes, and each byte string's token.
#[derive(Debug, Default)]
pub struct Pieces {
    by_id: HashMap<u32, Box<[u8]>>,
    by_bytes: HashMap<Box<[u8]>, u32>,
    /// The longest token, in bytes: how far a split looks.
    longest: usize,
}

impl Pieces {
    /// From every token's id and bytes (a tokenizer's vocabulary). When two ids share their
    /// bytes, the bytes name neither: a split through them is never taken.
    pub fn new(pieces: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Self {
        let mut out = Pieces::default();
        let mut shared = Vec::new();
        for (id, bytes) in pieces {
            let bytes: Box<[u8]> = bytes.into();
            if bytes.is_empty() {
                continue;
            }
            out.longest = out.longest.max(bytes.len());
            if out.by_bytes.insert(bytes.clone(), id).is_some() {
                shared.push(bytes.clone());
            }
            out.by_id.insert(id, bytes);
        }
        for bytes in shared {
            out.by_bytes.remove(&bytes);
        }
        out
    }

    /// The bytes of `ids` joined; `None` when one of them is unknown.
    pub fn bytes_of(&self, ids: &[u32]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for id in ids {
            out.extend_from_slice(self.by_id.get(id)?);
        }
        Some(out)
    }

    /// The one way to write `bytes` as exactly `count` tokens, or `None` when there is none or
    /// more than one.
    pub fn split(&self, bytes: &[u8], count: usize) -> Option<Vec<u32>> {
        if count == 0 || bytes.len() < count {
            return (count == 0 && bytes.is_empty()).then(Vec::new);
        }
        // ways[k][i]: how many ways (0, 1, or 2 for "more") the first i bytes are k tokens.
        let n = bytes.len();
        let mut ways = vec![vec![0u8; n + 1]; count + 1];
        ways[0][0] = 1;
        for k in 1..=count {
            for end in 1..=n {
                let mut total = 0u8;
                for start in end.saturating_sub(self.longest)..end {
                    if ways[k - 1][start] > 0 && self.by_bytes.contains_key(&bytes[start..end]) {
                        total = total.saturating_add(ways[k - 1][start]).min(2);
                    }
                }
                ways[k][end] = total;
            }
        }
        if ways[count][n] != 1 {
            return None;
        }
        // Walk the one split back from the end.
        let mut ids = Vec::with_capacity(count);
        let mut end = n;
        for k in (1..=count).rev() {
            let start = (end.saturating_sub(self.longest)..end).find(|&start| {
                ways[k - 1][start] > 0 && self.by_bytes.contains_key(&bytes[start..end])
            })?;
            ids.push(self.by_bytes[&bytes[start..end]]);
            end = start;
        }
        ids.reverse();
        Some(ids)
    }

    /// The ids held back before `ids` in a chunk whose text is `text`, when `held` of them are
    /// missing: the text's bytes before those of `ids`, split into `held` tokens.
    pub fn held_back(&self, text: &str, ids: &[u32], held: usize) -> Option<Vec<u32>> {
        let after = self.bytes_of(ids)?;
        let before = text.as_bytes().strip_suffix(after.as_slice())?;
        self.split(before, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces() -> Pieces {
        // Every byte, and a few merges: "ab", "bc", "\xf0\x9f".
        let mut all: Vec<(u32, Vec<u8>)> = (0..=255u8).map(|b| (u32::from(b), vec![b])).collect();
        all.extend([
            (300, b"ab".to_vec()),
            (301, b"bc".to_vec()),
            (302, vec![0xf0, 0x9f]),
        ]);
        Pieces::new(all)
    }

    #[test]
    fn a_split_is_taken_only_when_it_is_the_only_one() {
        let p = pieces();
        assert_eq!(p.split(b"a", 1), Some(vec![97]));
        assert_eq!(p.split(b"ab", 1), Some(vec![300]));
        assert_eq!(p.split(b"ab", 2), Some(vec![97, 98]));
        // "abc" as two tokens: "ab"+"c" or "a"+"bc".
        assert_eq!(p.split(b"abc", 2), None);
        assert_eq!(p.split(b"abc", 3), Some(vec![97, 98, 99]));
        assert_eq!(p.split(b"abc", 4), None);
        assert_eq!(p.split(b"", 0), Some(vec![]));
        assert_eq!(p.split(b"xyz", 1), None);
    }

    #[test]
    fn held_back_ids_are_the_text_before_the_new_ones() {
        let p = pieces();
        // "é" = c3 a9: c3 held, a9 sent with the whole character.
        assert_eq!(p.held_back("\u{e9}", &[0xa9], 1), Some(vec![0xc3]));
        // "😀" = f0 9f 98 80 written as "\xf0\x9f", 98, 80: two held, one sent.
        assert_eq!(p.held_back("\u{1f600}", &[0x80], 2), Some(vec![302, 0x98]));
        assert_eq!(
            p.held_back("\u{1f600}", &[0x80], 3),
            Some(vec![0xf0, 0x9f, 0x98])
        );
        // Text that does not end with the new token's bytes recovers nothing.
        assert_eq!(p.held_back("\u{e9}", &[0x41], 1), None);
        assert_eq!(p.held_back("\u{e9}", &[9999], 1), None);
    }

    #[test]
    fn bytes_that_two_tokens_share_name_neither() {
        let p = Pieces::new([(1, b"x".to_vec()), (2, b"x".to_vec()), (3, b"y".to_vec())]);
        assert_eq!(p.split(b"x", 1), None);
        assert_eq!(p.split(b"y", 1), Some(vec![3]));
    }
}
