//! Responses kept for `previous_response_id`. Each holds only the messages it added (its input
//! and its answer) and the id of the response it followed, so a conversation of n turns costs
//! n entries, not n² messages; the oldest are dropped first when a count or a byte budget is
//! passed, and a follow-up of a dropped response is told so.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::http::StatusCode;

use crate::api::ChatMessage;
use crate::error::ApiError;

/// The deepest chain of `previous_response_id` a request may follow (each link is one turn).
const MAX_CHAIN: usize = 10_000;

struct Entry {
    parent: Option<String>,
    messages: Vec<ChatMessage>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The stored responses, bounded in count and in bytes of text.
pub(crate) struct Stored {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

impl Stored {
    /// A store of at most `max_entries` responses and `max_bytes` of their text.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Stored {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps response `id`, which followed `parent` and added `messages`.
    pub(crate) fn put(&self, id: String, parent: Option<String>, messages: Vec<ChatMessage>) {
        let bytes = messages.iter().map(ChatMessage::text_bytes).sum::<usize>() + 64;
        if self.max_entries == 0 || bytes > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.bytes += bytes;
        inner.order.push_back(id.clone());
        if let Some(old) = inner.entries.insert(
            id,
            Entry {
                parent,
                messages,
                bytes,
            },
        ) {
            inner.bytes -= old.bytes;
        }
        while inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes;
            }
        }
    }

    /// The whole conversation up to and including response `id`, oldest message first.
    pub(crate) fn conversation(&self, id: &str) -> Result<Vec<ChatMessage>, ApiError> {
        let inner = self.lock();
        let mut chain = Vec::new();
        let mut next = Some(id.to_owned());
        while let Some(at) = next {
            let Some(entry) = inner.entries.get(&at) else {
                return Err(not_found(id, &at));
            };
            chain.push(&entry.messages);
            if chain.len() > MAX_CHAIN {
                return Err(ApiError::invalid(
                    Some("previous_response_id".into()),
                    format!(
                        "the conversation is over {MAX_CHAIN} responses long: start a new one with its input"
                    ),
                ));
            }
            next = entry.parent.clone();
        }
        Ok(chain.into_iter().rev().flatten().cloned().collect())
    }

    /// Responses and bytes held.
    #[cfg(test)]
    pub(crate) fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

fn not_found(asked: &str, missing: &str) -> ApiError {
    let message = if asked == missing {
        format!(
            "Previous response with id '{}' not found: responses are kept in this server's memory (not across restarts, not with store: false); send the whole conversation as input instead",
            crate::escape(asked, 100)
        )
    } else {
        format!(
            "the conversation of '{}' reaches back to '{}', which is no longer kept (the oldest responses are dropped first); send the whole conversation as input instead",
            crate::escape(asked, 100),
            crate::escape(missing, 100)
        )
    };
    ApiError {
        status: StatusCode::NOT_FOUND,
        ..ApiError::invalid(Some("previous_response_id".into()), message)
            .code("previous_response_not_found")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::User {
            content: Value::String(text.into()),
        }
    }

    #[test]
    fn a_chain_is_read_back_in_order_and_bounded() {
        let store = Stored::new(3, 1 << 20);
        store.put("a".into(), None, vec![user("1")]);
        store.put("b".into(), Some("a".into()), vec![user("2")]);
        store.put("c".into(), Some("b".into()), vec![user("3")]);
        let texts: Vec<String> = store
            .conversation("c")
            .unwrap()
            .iter()
            .map(|m| match m {
                ChatMessage::User { content } => content.as_str().unwrap().to_owned(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["1", "2", "3"]);
        // A fourth drops the oldest: the chain through it is broken, and said to be.
        store.put("d".into(), Some("c".into()), vec![user("4")]);
        assert_eq!(store.size().0, 3);
        let err = store.conversation("d").unwrap_err();
        assert!(err.message.contains("no longer kept"), "{}", err.message);
        assert_eq!(store.conversation("zz").unwrap_err().status, 404);
    }

    #[test]
    fn the_byte_budget_holds() {
        let store = Stored::new(1000, 10_000);
        for i in 0..100 {
            store.put(format!("r{i}"), None, vec![user(&"x".repeat(1000))]);
        }
        let (count, bytes) = store.size();
        assert!(bytes <= 10_000 && count < 10, "{count} {bytes}");
        // One response over the budget is not kept at all.
        store.put("big".into(), None, vec![user(&"x".repeat(20_000))]);
        assert!(store.conversation("big").is_err());
    }
}
