//! Structured answers on the embedded engine: a request's [`Structured`] shape compiled into an
//! llguidance grammar over the model's own vocabulary, and at each step the mask of the ids that
//! keep the answer inside it. The request's stop ids are the grammar's end: they are allowed
//! only once the answer is complete, and nothing else is allowed then.

use std::sync::{Arc, Mutex};

use glm_engine::{Cause, EngineError, Structured};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};

/// The parser factory of one vocabulary, built on first use (it indexes every token's bytes),
/// and rebuilt only if a request's stop ids differ from the ones it was built with.
pub(crate) struct Grammars {
    tokenizer: Arc<tokenizers::Tokenizer>,
    built: Mutex<Option<(Vec<u32>, Arc<ParserFactory>)>>,
}

/// A request's grammar as it advances token by token.
pub struct Grammar {
    matcher: Matcher,
    stop_ids: Vec<u32>,
}

impl std::fmt::Debug for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammar")
            .field("stopped", &self.matcher.is_stopped())
            .finish()
    }
}

/// The first line of an llguidance error (the rest is its parser's state, for its developers).
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_owned()
}

fn invalid(message: impl std::fmt::Display) -> EngineError {
    EngineError::new(
        Cause::Invalid,
        format!("the answer's structure cannot be enforced: {message}"),
    )
}

/// A JSON Schema with the spacing fixed (`, ` and `: `, no free whitespace) unless the schema
/// sets its own: free whitespace would let a model pad an answer until its token limit.
fn with_spacing(schema: &serde_json::Value) -> serde_json::Value {
    let mut schema = match schema {
        serde_json::Value::Object(_) => schema.clone(),
        serde_json::Value::Bool(true) => serde_json::json!({}),
        other => other.clone(),
    };
    if let Some(map) = schema.as_object_mut()
        && !map.contains_key("x-guidance")
    {
        map.insert(
            "x-guidance".into(),
            serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

/// The grammar in llguidance's Lark: the lead and the JSON answer, or (when calls are named)
/// one of the names, a newline and a JSON object.
pub(crate) fn lark(structured: &Structured) -> Result<String, EngineError> {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let schema = serde_json::to_string(&with_spacing(&structured.schema)).map_err(invalid)?;
    let answer = if structured.lead.is_empty() {
        format!("%json {schema}")
    } else {
        format!("{} %json {schema}", text(&structured.lead))
    };
    let names = |list: &[String]| list.iter().map(|n| text(n)).collect::<Vec<_>>().join(" | ");
    let mut rules = vec![format!("answer: {answer}")];
    let mut start = vec!["answer"];
    if !structured.calls.is_empty() {
        // A function's arguments: a JSON object, spaced as the answer is.
        let object = with_spacing(&serde_json::json!({"type": "object"}));
        rules.push(format!(
            "call: ({}) \"\\n\" %json {object}",
            names(&structured.calls)
        ));
        start.push("call");
    }
    if !structured.text_calls.is_empty() {
        // A text tool's arguments: its own text (code, a browser command).
        rules.push(format!(
            "text_call: ({}) \"\\n\" TEXT\nTEXT: /[\\s\\S]*/",
            names(&structured.text_calls)
        ));
        start.push("text_call");
    }
    Ok(format!(
        "start: {}\n{}\n",
        start.join(" | "),
        rules.join("\n")
    ))
}

impl Grammars {
    pub(crate) fn new(tokenizer: Arc<tokenizers::Tokenizer>) -> Self {
        Grammars {
            tokenizer,
            built: Mutex::new(None),
        }
    }

    fn factory(&self, stop_ids: &[u32]) -> Result<Arc<ParserFactory>, EngineError> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ids, factory)) = built.as_ref()
            && ids == stop_ids
        {
            return Ok(factory.clone());
        }
        if stop_ids.is_empty() {
            return Err(invalid(
                "the request has no stop ids to end the answer with",
            ));
        }
        let tokenizer = (*self.tokenizer).clone();
        let specials: Vec<(u32, String)> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        let bytes_of = toktrie_hf_tokenizers::ByteTokenizer::from_tokenizer(tokenizer)
            .map_err(|e| invalid(format!("the vocabulary cannot be indexed ({e})")))?;
        let mut info = bytes_of.tokrx_info();
        let mut token_bytes = bytes_of.token_bytes();
        // Added tokens past the base vocabulary (GLM-4's control tokens) get their places.
        let size = specials
            .iter()
            .map(|(id, _)| *id as usize + 1)
            .chain([token_bytes.len(), self.tokenizer.get_vocab_size(true)])
            .max()
            .unwrap_or(0);
        token_bytes.resize(size, Vec::new());
        info.vocab_size = size as u32;
        // Control tokens are marked as such, so that no text in the grammar can spell them.
        for (id, content) in specials {
            if let Some(bytes) = token_bytes.get_mut(id as usize)
                && bytes.first() != Some(&toktrie::TokTrie::SPECIAL_TOKEN_MARKER)
            {
                let mut marked = vec![toktrie::TokTrie::SPECIAL_TOKEN_MARKER];
                marked.extend(content.as_bytes());
                *bytes = marked;
            }
        }
        let vocab = token_bytes.len() as u32;
        if let Some(bad) = stop_ids.iter().find(|&&id| id >= vocab) {
            return Err(invalid(format!(
                "the stop id {bad} is outside the vocabulary"
            )));
        }
        let trie = toktrie::TokTrie::from(&info, &token_bytes).with_eos_tokens(stop_ids);
        let env = toktrie_hf_tokenizers::ByteTokenizerEnv {
            tokenizer: bytes_of,
            tok_trie: trie,
        }
        .to_env();
        let factory = Arc::new(ParserFactory::new_simple(&env).map_err(invalid)?);
        *built = Some((stop_ids.to_vec(), factory.clone()));
        Ok(factory)
    }

    /// Refuses a grammar that no answer can follow past its lead (a schema that only refers to
    /// itself, say): found before generating, not as a dead end halfway.
    fn check_satisfiable(&self, matcher: &Matcher, lead: &str) -> Result<(), EngineError> {
        let unsatisfiable = |e: &dyn std::fmt::Display| {
            invalid(format!(
                "no JSON value can match the schema ({})",
                first_line(e)
            ))
        };
        let mut probe = matcher.deep_clone();
        let lead = self
            .tokenizer
            .encode(lead, false)
            .map_err(|e| invalid(format!("the lead cannot be encoded ({e})")))?;
        probe
            .consume_tokens(lead.get_ids())
            .map_err(|e| unsatisfiable(&e))?;
        let mask = probe.compute_mask().map_err(|e| unsatisfiable(&e))?;
        let accepting = probe.is_accepting().map_err(|e| unsatisfiable(&e))?;
        if mask.is_zero() && !accepting {
            return Err(invalid("no JSON value can match the schema"));
        }
        Ok(())
    }

    /// The grammar of `structured`, ended by `stop_ids`.
    pub(crate) fn compile(
        &self,
        structured: &Structured,
        stop_ids: &[u32],
    ) -> Result<Grammar, EngineError> {
        let factory = self.factory(stop_ids)?;
        let grammar = TopLevelGrammar::from_lark(lark(structured)?);
        let parser = factory.create_parser(grammar).map_err(invalid)?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(invalid(e));
        }
        self.check_satisfiable(&matcher, &structured.lead)?;
        Ok(Grammar {
            matcher,
            stop_ids: stop_ids.to_vec(),
        })
    }
}

impl Grammar {
    /// `logits` with every id the grammar does not allow next set to minus infinity; the stop
    /// ids are allowed once the answer is complete.
    pub fn mask(&mut self, logits: &[f32]) -> Result<Vec<f32>, String> {
        let accepting = self.matcher.is_accepting().map_err(|e| first_line(&e))?;
        let mut masked = vec![f32::NEG_INFINITY; logits.len()];
        if !self.matcher.is_stopped() {
            let allowed = self.matcher.compute_mask().map_err(|e| first_line(&e))?;
            for (id, m) in masked.iter_mut().enumerate().take(allowed.len()) {
                if allowed.is_allowed(id as u32) {
                    *m = logits[id];
                }
            }
        }
        for &stop in &self.stop_ids {
            if let Some(m) = masked.get_mut(stop as usize) {
                *m = if accepting {
                    logits[stop as usize]
                } else {
                    f32::NEG_INFINITY
                };
            }
        }
        Ok(masked)
    }

    /// Advances past `id` (a stop id ends the answer and is not fed).
    pub fn consume(&mut self, id: u32) -> Result<(), String> {
        if self.stop_ids.contains(&id) {
            return Ok(());
        }
        self.matcher.consume_token(id).map_err(|e| first_line(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_lark_names_calls_as_alternatives() {
        let only = lark(&Structured {
            schema: json!({"type": "object"}),
            lead: "\n".into(),
            calls: Vec::new(),
            text_calls: Vec::new(),
        })
        .unwrap();
        assert!(
            only.starts_with("start: answer\nanswer: \"\\n\" %json {"),
            "{only}"
        );
        let all = lark(&Structured {
            schema: json!({}),
            lead: String::new(),
            calls: vec!["get_weather".into(), "a\"b".into()],
            text_calls: vec!["python".into()],
        })
        .unwrap();
        assert!(
            all.starts_with("start: answer | call | text_call\n"),
            "{all}"
        );
        assert!(
            all.contains("call: (\"get_weather\" | \"a\\\"b\") \"\\n\" %json {"),
            "{all}"
        );
        assert!(
            all.contains("text_call: (\"python\") \"\\n\" TEXT\n"),
            "{all}"
        );
    }
}
