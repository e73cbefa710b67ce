//! A conversation in progress: its messages and the exact prompt ids built so far.

use glm_prompts::Message;
use sha2::{Digest, Sha256};

/// A conversation in progress: the messages and the exact prompt ids so far. `run` starts one;
/// `chat` continues one turn after turn.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The conversation as messages.
    pub messages: Vec<Message>,
    /// The prompt ids, append-only.
    pub ids: Vec<u32>,
    /// Turns taken over the session's life.
    pub steps: usize,
    /// How many of `ids` earlier model events already account for (prompt plus generated).
    pub recorded: usize,
    /// A running hash of `ids[..hashed]`: each step hashes only what it appended.
    hasher: Sha256,
    hashed: usize,
}

impl Session {
    /// A session that starts with `messages` (a system turn, earlier turns) and no ids yet.
    pub fn with_messages(messages: Vec<Message>) -> Self {
        Session {
            messages,
            ..Session::default()
        }
    }

    /// [`prefix_hash`] of `ids`, hashing only the ids added since the last call.
    pub fn prefix_hash(&mut self) -> String {
        if self.hashed > self.ids.len() {
            // The ids were replaced, not extended: start over.
            self.hasher = Sha256::new();
            self.hashed = 0;
        }
        for id in &self.ids[self.hashed..] {
            self.hasher.update(id.to_le_bytes());
        }
        self.hashed = self.ids.len();
        hex::encode(&self.hasher.clone().finalize()[..8])
    }
}

/// A short hash of a prompt's ids, recorded in traces to check replays.
pub fn prefix_hash(ids: &[u32]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_le_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_hash_equals_the_whole_hash() {
        let mut session = Session {
            ids: vec![1, 2, 3],
            ..Session::default()
        };
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3]));
        session.ids.extend([4, 5]);
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3, 4, 5]));
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3, 4, 5]));
        session.ids = vec![9];
        assert_eq!(session.prefix_hash(), prefix_hash(&[9]));
    }
}
