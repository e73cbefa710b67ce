//! The engine's account of mistral.rs's prefix cache, which never evicts on CPU.

use std::collections::HashMap;

/// The engine's account of what mistral.rs's prefix cache holds.
#[derive(Debug, Default)]
pub(crate) struct CacheBook {
    /// Cached sequences (prompt + generated + sentinel) and their lengths in tokens.
    pub(crate) entries: HashMap<Vec<u32>, usize>,
    pub(crate) tokens: u64,
    pub(crate) resets: u64,
}

impl CacheBook {
    /// The prompt tokens a new request will find cached: the longest shared prefix, less the
    /// sentinel, and none when the prompt adds nothing to a cached sequence.
    pub(crate) fn cached_for(&self, prompt: &[u32]) -> usize {
        let mut best = 0;
        for key in self.entries.keys() {
            let shared = key.iter().zip(prompt).take_while(|(a, b)| a == b).count();
            best = best.max(shared);
        }
        if best >= prompt.len() { 0 } else { best }
    }

    /// Records a cached sequence. mistral.rs grows a sequence's key/value buffers 512 tokens
    /// at a time, so that is what an entry holds.
    pub(crate) fn add(&mut self, seq: Vec<u32>) {
        let held = seq.len().div_ceil(512) * 512;
        if self.entries.insert(seq, held).is_none() {
            self.tokens += held as u64;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.tokens = 0;
        self.resets += 1;
    }
}
