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
    /// Tools the person said to run for the rest of the session.
    pub approved: std::collections::BTreeSet<String>,
    /// Set when the tools offered are not those the conversation's prompt declares (a resumed
    /// conversation with other tools): the model is told the list before its next turn.
    pub tools_changed: bool,
    /// Set when `messages` do not hold the whole conversation that `ids` hold (a resumed one):
    /// the prompt cannot be rendered anew from them, so no tool output is cut.
    pub partial_messages: bool,
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

    /// A session that goes on from `ids` (a recorded conversation), `steps` model turns taken;
    /// the next model event accounts for what follows them.
    pub fn continuing(ids: Vec<u32>, steps: usize) -> Self {
        Session {
            recorded: ids.len(),
            ids,
            steps,
            ..Session::default()
        }
    }

    /// Replaces the prompt ids with `ids`, rendered anew (a cut): the running hash starts over
    /// and the next model event records the whole prompt.
    pub fn replace_ids(&mut self, ids: Vec<u32>) {
        self.ids = ids;
        self.hasher = Sha256::new();
        self.hashed = 0;
        self.recorded = 0;
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
