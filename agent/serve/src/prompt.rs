//! OpenAI messages -> GLM-4 prompt ids, token-exact across requests.
//!
//! A client sends the whole conversation each turn, with the assistant's earlier answers as
//! content and calls. Re-encoding those from text can give other ids than the ones the model
//! generated (a tokenizer need not round-trip), which would break the prefix cache from that point.
//! The server therefore remembers the exact ids it generated for each answer it returned, keyed
//! by the prompt that produced the answer and the answer as returned; a later prompt that repeats
//! both gets the remembered ids, so it extends the earlier prompt exactly.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use glm_prompts::{Encoder, FunctionSpec, Message, Role, SpecialToken, ToolSpec, render_message};
use sha2::{Digest, Sha256};

use crate::api::{ChatMessage, ToolDef, content_text, valid_function_name};
use crate::error::ApiError;

/// The key of a remembered answer.
pub type Key = [u8; 32];

/// A running hash of prompt ids, so that each assistant message's key costs only its own ids.
#[derive(Clone, Default)]
pub struct PrefixHash(Sha256);

impl PrefixHash {
    fn add(&mut self, ids: &[u32]) {
        for id in ids {
            self.0.update(id.to_le_bytes());
        }
    }

    /// The key of an answer `content` with `calls` after this prefix. A call's arguments count
    /// by their meaning, not their spelling: a client that sends them back re-serialised (other
    /// spacing, key order or escapes, as LangChain does) finds the same key.
    pub fn key(&self, content: &str, calls: &[(String, String)]) -> Key {
        let mut h = self.0.clone();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(content.as_bytes());
        for (name, arguments) in calls {
            field(name.as_bytes());
            field(canonical_arguments(arguments).as_bytes());
        }
        h.finalize().into()
    }
}

/// Arguments in one spelling: JSON parsed and written back with sorted keys and no spaces;
/// text that is not JSON as it is.
fn canonical_arguments(arguments: &str) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (n, key) in keys.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(key.as_str()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value) => {
            let mut out = String::with_capacity(arguments.len());
            write(&value, &mut out);
            out
        }
        Err(_) => arguments.to_owned(),
    }
}

struct Entry {
    ids: Vec<u32>,
    stamp: u64,
}

/// The answers' ids, least recently used dropped first, bounded in entries and in ids.
pub struct Memory {
    inner: Mutex<MemoryInner>,
    max_entries: usize,
    max_ids: usize,
}

#[derive(Default)]
struct MemoryInner {
    entries: HashMap<Key, Entry>,
    by_age: BTreeMap<u64, Key>,
    clock: u64,
    ids: usize,
}

impl Memory {
    /// A memory of at most `max_entries` answers and `max_ids` ids in all.
    pub fn new(max_entries: usize, max_ids: usize) -> Self {
        Memory {
            inner: Mutex::new(MemoryInner::default()),
            max_entries: max_entries.max(1),
            max_ids,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ids remembered under `key`, marked as used.
    pub fn get(&self, key: &Key) -> Option<Vec<u32>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        let old = std::mem::replace(&mut entry.stamp, now);
        let ids = entry.ids.clone();
        inner.by_age.remove(&old);
        inner.by_age.insert(now, *key);
        Some(ids)
    }

    /// Remembers `ids` under `key`.
    pub fn put(&self, key: Key, ids: Vec<u32>) {
        if ids.len() > self.max_ids {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let stamp = inner.clock;
        inner.ids += ids.len();
        if let Some(old) = inner.entries.insert(key, Entry { ids, stamp }) {
            inner.ids -= old.ids.len();
            inner.by_age.remove(&old.stamp);
        }
        inner.by_age.insert(stamp, key);
        while inner.entries.len() > self.max_entries || inner.ids > self.max_ids {
            let Some((_, oldest)) = inner.by_age.pop_first() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.ids -= gone.ids.len();
            }
        }
    }

    /// Answers and ids held.
    #[cfg(test)]
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.ids)
    }
}

/// A built chat prompt.
pub struct ChatPrompt {
    /// The ids, ending with `<|assistant|>` (the forced start, if any, is not included).
    pub ids: Vec<u32>,
    /// The hash of `ids`, for remembering the answer.
    pub hash: PrefixHash,
    /// Assistant messages whose ids came from memory: their index and ids.
    pub remembered: Vec<(usize, Vec<u32>)>,
}

/// An upper bound on the bytes a tool's JSON renders to in the prompt (`json.dumps` with an
/// indent of 4 and ASCII escapes: a line per value, indented by its depth, and up to six bytes
/// per byte of a string), found without rendering it.
pub struct RenderedSize {
    /// The bound so far.
    pub bytes: usize,
    /// Whether a value nests deeper than allowed (the walk stops there).
    pub too_deep: bool,
    max_depth: usize,
}

impl RenderedSize {
    /// A walk that refuses nesting beyond `max_depth`.
    pub fn new(max_depth: usize) -> Self {
        RenderedSize {
            bytes: 0,
            too_deep: false,
            max_depth,
        }
    }

    /// Adds `key: value` at `depth`.
    pub fn add(&mut self, key: &str, value: &serde_json::Value, depth: usize) {
        self.bytes = self.bytes.saturating_add(key.len().saturating_mul(6) + 4);
        self.value(value, depth);
    }

    fn value(&mut self, value: &serde_json::Value, depth: usize) {
        use serde_json::Value;
        if depth > self.max_depth {
            self.too_deep = true;
            return;
        }
        // The line break, the indent and the separators around a value.
        let line = 4usize.saturating_mul(depth).saturating_add(4);
        self.bytes = self.bytes.saturating_add(line);
        match value {
            Value::Null | Value::Bool(_) => self.bytes = self.bytes.saturating_add(5),
            Value::Number(n) => self.bytes = self.bytes.saturating_add(n.to_string().len()),
            Value::String(text) => {
                self.bytes = self.bytes.saturating_add(text.len().saturating_mul(6))
            }
            Value::Array(items) => {
                // The closing bracket's own line.
                self.bytes = self.bytes.saturating_add(line);
                for item in items {
                    self.value(item, depth + 1);
                    if self.too_deep {
                        return;
                    }
                }
            }
            Value::Object(map) => {
                self.bytes = self.bytes.saturating_add(line);
                for (key, item) in map {
                    self.add(key, item, depth + 1);
                    if self.too_deep {
                        return;
                    }
                }
            }
        }
    }
}

/// The tool section of a request, checked.
pub fn tool_specs(tools: &[ToolDef]) -> Result<Vec<ToolSpec>, ApiError> {
    let mut specs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        if tool.kind != "function" {
            return Err(ApiError::invalid(
                Some(format!("{param}.type")),
                format!(
                    "tool type `{}` is not supported: use \"function\"",
                    tool.kind
                ),
            ));
        }
        let Some(function) = &tool.function else {
            return Err(ApiError::invalid(
                Some(format!("{param}.function")),
                "a function tool needs a \"function\" object",
            ));
        };
        let name = function.get("name").and_then(|v| v.as_str()).unwrap_or("");
        if !valid_function_name(name) {
            return Err(ApiError::invalid(
                Some(format!("{param}.function.name")),
                format!(
                    "`{name}` is not a valid function name: use 1 to 64 letters, digits, underscores or dashes"
                ),
            ));
        }
        if !seen.insert(name.to_owned()) {
            return Err(ApiError::invalid(
                Some(format!("{param}.function.name")),
                format!("two tools are named `{name}`"),
            ));
        }
        if let Some(p) = function.get("parameters")
            && !p.is_object()
        {
            return Err(ApiError::invalid(
                Some(format!("{param}.function.parameters")),
                "parameters must be a JSON Schema object",
            ));
        }
        if let Some(d) = function.get("description")
            && !d.is_string()
        {
            return Err(ApiError::invalid(
                Some(format!("{param}.function.description")),
                "description must be a string",
            ));
        }
        let spec = FunctionSpec::try_from(function.clone())
            .map_err(|e| ApiError::invalid(Some(format!("{param}.function")), e))?;
        specs.push(ToolSpec::Function { function: spec });
    }
    Ok(specs)
}

/// Builds the prompt of a chat request: the tool section (when there are tools) first, then
/// every message in order (system prompts always kept), then `<|assistant|>`. `remembered` gives
/// the ids of an assistant message (by index and key) when they are known.
pub fn chat_prompt(
    encoder: &Encoder,
    remembered: &mut dyn FnMut(usize, &Key) -> Option<Vec<u32>>,
    tools: Vec<ToolSpec>,
    messages: &[ChatMessage],
) -> Result<ChatPrompt, ApiError> {
    let special = *encoder.special_ids();
    let mut out = ChatPrompt {
        ids: Vec::new(),
        hash: PrefixHash::default(),
        remembered: Vec::new(),
    };
    push(
        &mut out,
        &[
            special.id(SpecialToken::GMask),
            special.id(SpecialToken::Sop),
        ],
    );
    if !tools.is_empty() {
        let m = Message::system_with_tools(tools, "");
        push(&mut out, &encode(encoder, &m)?);
    }
    for i in in_call_order(messages)? {
        let message = &messages[i];
        let param = format!("messages[{i}].content");
        let (role, content) = match message {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                (Role::System, content)
            }
            ChatMessage::User { content } => (Role::User, content),
            ChatMessage::Tool { content, .. } => (Role::Observation, content),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let text = match content {
                    Some(c) => content_text(c, &param)?,
                    None => String::new(),
                };
                let calls: Vec<(String, String)> = tool_calls
                    .iter()
                    .flatten()
                    .map(|c| (c.function.name.clone(), c.function.arguments_text()))
                    .collect();
                assistant_turns(encoder, &mut out, remembered, i, text, calls)?;
                continue;
            }
        };
        let m = Message::new(role, content_text(content, &param)?);
        push(&mut out, &encode(encoder, &m)?);
    }
    push(&mut out, &[special.id(SpecialToken::Assistant)]);
    Ok(out)
}

/// The messages' indices in the order GLM-4 reads them: each run of tool results after an
/// assistant message with calls is put in its calls' order by `tool_call_id` (a result that
/// names no call of that message is an error naming it); results without ids keep their place.
fn in_call_order(messages: &[ChatMessage]) -> Result<Vec<usize>, ApiError> {
    let mut order = Vec::with_capacity(messages.len());
    let mut calls: Vec<Option<&str>> = Vec::new();
    let mut i = 0;
    while i < messages.len() {
        match &messages[i] {
            ChatMessage::Tool { .. } => {
                let start = i;
                while i < messages.len() && matches!(messages[i], ChatMessage::Tool { .. }) {
                    i += 1;
                }
                let mut run: Vec<(usize, usize)> = Vec::with_capacity(i - start);
                for (n, j) in (start..i).enumerate() {
                    let ChatMessage::Tool {
                        tool_call_id: Some(id),
                        ..
                    } = &messages[j]
                    else {
                        run.push((n, j));
                        continue;
                    };
                    if calls.iter().all(Option::is_none) {
                        run.push((n, j));
                        continue;
                    }
                    let Some(at) = calls.iter().position(|c| *c == Some(id.as_str())) else {
                        let known: Vec<&str> = calls.iter().flatten().copied().collect();
                        return Err(ApiError::invalid(
                            Some(format!("messages[{j}].tool_call_id")),
                            format!(
                                "`{}` names no call of the assistant message before it (its calls: {})",
                                crate::log::escape(id, 100),
                                crate::log::escape(&known.join(", "), 300)
                            ),
                        ));
                    };
                    run.push((at, j));
                }
                run.sort_by_key(|(at, _)| *at);
                order.extend(run.into_iter().map(|(_, j)| j));
            }
            ChatMessage::Assistant { tool_calls, .. } => {
                calls = tool_calls
                    .iter()
                    .flatten()
                    .map(|c| c.id.as_deref())
                    .collect();
                order.push(i);
                i += 1;
            }
            _ => {
                calls.clear();
                order.push(i);
                i += 1;
            }
        }
    }
    Ok(order)
}

fn encode(encoder: &Encoder, m: &Message) -> Result<Vec<u32>, ApiError> {
    encoder
        .encode(&render_message(m).0)
        .map_err(|e| ApiError::server(format!("cannot encode the prompt: {e}")))
}

fn push(out: &mut ChatPrompt, ids: &[u32]) {
    out.hash.add(ids);
    out.ids.extend_from_slice(ids);
}

/// An earlier answer: its remembered ids, else its content and calls rendered as GLM-4 turns.
fn assistant_turns(
    encoder: &Encoder,
    out: &mut ChatPrompt,
    remembered: &mut dyn FnMut(usize, &Key) -> Option<Vec<u32>>,
    index: usize,
    text: String,
    calls: Vec<(String, String)>,
) -> Result<(), ApiError> {
    let assistant = encoder.special_ids().id(SpecialToken::Assistant);
    let mut after = out.hash.clone();
    after.add(&[assistant]);
    if let Some(ids) = remembered(index, &after.key(&text, &calls)) {
        push(out, &[assistant]);
        push(out, &ids);
        out.remembered.push((index, ids));
        return Ok(());
    }
    if !text.is_empty() {
        push(out, &encode(encoder, &Message::new(Role::Assistant, text))?);
    }
    for (name, arguments) in calls {
        let ids = if arguments.is_empty() {
            // An empty turn renders nothing; a call with no arguments still names its tool.
            let mut ids = vec![assistant];
            ids.extend(
                encoder
                    .encode_text(&format!("{name}\n"))
                    .map_err(|e| ApiError::server(format!("cannot encode: {e}")))?,
            );
            ids
        } else {
            encode(
                encoder,
                &Message::new(Role::Assistant, arguments).with_metadata(name),
            )?
        };
        push(out, &ids);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_stays_within_its_bounds_and_keeps_what_is_used() {
        let m = Memory::new(3, 10);
        let h = PrefixHash::default();
        let key = |i: u32| h.key(&i.to_string(), &[]);
        m.put(key(1), vec![1; 4]);
        m.put(key(2), vec![2; 4]);
        assert!(m.get(&key(1)).is_some());
        // Over 10 ids: the least recently used (2) goes.
        m.put(key(3), vec![3; 4]);
        assert_eq!(m.size(), (2, 8));
        assert!(m.get(&key(2)).is_none());
        assert_eq!(m.get(&key(1)), Some(vec![1; 4]));
        m.put(key(4), vec![4; 11]);
        assert!(
            m.get(&key(4)).is_none(),
            "an answer over the whole bound is not kept"
        );
    }

    #[test]
    fn arguments_count_by_meaning_not_spelling() {
        let h = PrefixHash::default();
        let call = |args: &str| h.key("", &[("get_weather".into(), args.into())]);
        let model = call(r#"{"city":"Oslo","days":[1,2],"unit":"c\u00e9"}"#);
        // LangChain's json.dumps: spaces after separators, keys in its own order, escapes.
        assert_eq!(
            model,
            call(r#"{"unit": "c\u00e9", "city": "Oslo", "days": [1, 2]}"#)
        );
        assert_eq!(
            model,
            call("{\"city\": \"Oslo\", \"days\": [1, 2], \"unit\": \"c\u{e9}\"}")
        );
        assert_ne!(model, call(r#"{"city":"Bergen","days":[1,2],"unit":"cé"}"#));
        assert_ne!(model, call(r#"{"city":"Oslo","days":[2,1],"unit":"cé"}"#));
        // Not JSON: as it is.
        assert_ne!(call("print(1)"), call("print( 1)"));
    }

    #[test]
    fn keys_tell_content_from_calls() {
        let h = PrefixHash::default();
        assert_ne!(h.key("ab", &[]), h.key("a", &[("b".into(), String::new())]));
        let mut other = h.clone();
        other.add(&[7]);
        assert_ne!(h.key("x", &[]), other.key("x", &[]));
    }

    #[test]
    fn the_rendered_size_bounds_the_render_and_stops_at_the_depth_limit() {
        use serde_json::json;
        let mut nested = json!({"type": "string", "description": "ünïcode and \"quotes\""});
        for _ in 0..20 {
            nested =
                json!({"type": "object", "properties": {"a": nested, "b": [1, 2.5, true, null]}});
        }
        let function = json!({"name": "f", "description": "d", "parameters": nested});
        let map = function.as_object().unwrap().clone();
        let rendered = glm_prompts::pyjson::dumps_object_indent(&map, 4);
        let mut size = RenderedSize::new(64);
        for (key, value) in &map {
            size.add(key, value, 1);
        }
        assert!(!size.too_deep);
        assert!(
            size.bytes >= rendered.len(),
            "bound {} below the render's {}",
            size.bytes,
            rendered.len()
        );
        assert!(
            size.bytes < rendered.len() * 4,
            "the bound is loose: {}",
            size.bytes
        );
        let mut shallow = RenderedSize::new(10);
        for (key, value) in &map {
            shallow.add(key, value, 1);
        }
        assert!(shallow.too_deep);
    }
}
