//! A Responses answer: the `response` object, whole or as the event sequence a streaming client
//! reads (`response.created`, `response.in_progress`, for each output item its `added`, its
//! deltas and its `done` events, then `response.completed` or `response.incomplete` with the
//! usage). GLM-4's content becomes a `message` item and each call a `function_call` item, the
//! same calls chat completions returns as `tool_calls`.

use glm_agent::engine::Usage;
use glm_prompts::Piece;
use serde_json::{Value, json};

use super::Meta;
use crate::api::{ChatMessage, FunctionCallIn, ToolCallIn};
use crate::job::Job;

/// One SSE event: its name and its JSON data.
pub(crate) type SseOut = (&'static str, String);

/// An output item as it is written.
enum Item {
    Message {
        text: String,
    },
    Call {
        index: usize,
        name: String,
        arguments: String,
    },
}

/// How a response ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Completed,
    /// The token limit ended it.
    Incomplete,
}

/// The streamed state of one response.
#[derive(Default)]
pub(crate) struct Stream {
    sequence: u64,
    items: Vec<Item>,
    /// Whether the last item still takes deltas.
    open: bool,
}

pub(crate) fn response_id(job: &Job) -> String {
    format!("resp_{:016x}", job.number)
}

fn message_id(job: &Job, at: usize) -> String {
    format!("msg_{:016x}{at:02}", job.number)
}

fn call_item_id(job: &Job, index: usize) -> String {
    format!("fc_{:016x}{index:02}", job.number)
}

/// The id a call's result names: the chat endpoint's id of the same call.
pub(crate) fn call_id(job: &Job, index: usize) -> String {
    format!("call_{:016x}{index:02}", job.number)
}

fn meta(job: &Job) -> Option<&Meta> {
    job.responses.as_deref()
}

impl Item {
    fn to_value(&self, job: &Job, at: usize, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            Item::Message { text } => json!({
                "id": message_id(job, at), "type": "message", "status": status,
                "role": "assistant",
                "content": if done || !text.is_empty() {
                    vec![text_part(text)]
                } else {
                    Vec::new()
                },
            }),
            Item::Call {
                index,
                name,
                arguments,
            } => json!({
                "id": call_item_id(job, *index), "type": "function_call", "status": status,
                "call_id": call_id(job, *index), "name": name,
                "arguments": if done { arguments.as_str() } else { "" },
            }),
        }
    }
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn usage_value(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens.unwrap_or(0)},
        "output_tokens": usage.generated_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.generated_tokens,
    })
}

/// The `response` object.
fn response(job: &Job, status: &str, output: Vec<Value>, usage: Option<&Usage>) -> Value {
    let Some(m) = meta(job) else {
        // Only Responses jobs are answered here; the bare object for any other.
        return json!({"id": response_id(job), "object": "response", "status": status, "output": output});
    };
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": response_id(job), "object": "response", "created_at": job.created,
        "status": status, "error": null, "incomplete_details": incomplete,
        "instructions": m.instructions, "max_output_tokens": m.max_output_tokens,
        "model": job.model, "output": output, "parallel_tool_calls": m.parallel_tool_calls,
        "previous_response_id": m.previous_response_id,
        "reasoning": {"effort": null, "summary": null}, "store": m.store,
        "temperature": m.temperature.unwrap_or(1.0), "text": {"format": m.text_format},
        "tool_choice": m.tool_choice, "tools": m.tools, "top_p": m.top_p.unwrap_or(1.0),
        "truncation": "disabled", "usage": usage.map(usage_value), "user": null,
        "metadata": m.metadata,
    })
}

impl Stream {
    fn event(&mut self, name: &'static str, mut data: Value) -> SseOut {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        (name, data.to_string())
    }

    /// The first events: the response created and in progress.
    pub(crate) fn open(&mut self, job: &Job) -> Vec<SseOut> {
        let shell = response(job, "in_progress", Vec::new(), None);
        vec![
            self.event("response.created", json!({"response": shell})),
            self.event("response.in_progress", json!({"response": shell})),
        ]
    }

    /// The events of one piece of the answer.
    pub(crate) fn piece(&mut self, job: &Job, piece: &Piece) -> Vec<SseOut> {
        let mut out = Vec::new();
        match piece {
            Piece::Content(text) if text.is_empty() => {}
            Piece::Content(text) => {
                if !(self.open && matches!(self.items.last(), Some(Item::Message { .. }))) {
                    self.close(job, &mut out);
                    self.items.push(Item::Message {
                        text: String::new(),
                    });
                    self.open = true;
                    let at = self.items.len() - 1;
                    let item = self.items[at].to_value(job, at, false);
                    let id = message_id(job, at);
                    out.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": at, "item": item}),
                    ));
                    out.push(self.event(
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": at, "content_index": 0, "part": text_part("")}),
                    ));
                }
                let at = self.items.len() - 1;
                if let Some(Item::Message { text: all }) = self.items.last_mut() {
                    all.push_str(text);
                }
                out.push(self.event(
                    "response.output_text.delta",
                    json!({"item_id": message_id(job, at), "output_index": at, "content_index": 0, "delta": text, "logprobs": []}),
                ));
            }
            Piece::CallStart { index, name } => {
                self.close(job, &mut out);
                self.items.push(Item::Call {
                    index: *index,
                    name: name.clone(),
                    arguments: String::new(),
                });
                self.open = true;
                let at = self.items.len() - 1;
                let item = self.items[at].to_value(job, at, false);
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": at, "item": item}),
                ));
            }
            Piece::CallArguments { arguments, .. } => {
                let at = self.items.len().saturating_sub(1);
                let Some(Item::Call {
                    index,
                    arguments: all,
                    ..
                }) = self.items.last_mut()
                else {
                    return out;
                };
                all.push_str(arguments);
                let id = call_item_id(job, *index);
                out.push(self.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": at, "delta": arguments}),
                ));
            }
        }
        out
    }

    /// The `done` events of the open item.
    fn close(&mut self, job: &Job, out: &mut Vec<SseOut>) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let at = self.items.len() - 1;
        let item = self.items[at].to_value(job, at, true);
        match &self.items[at] {
            Item::Message { text } => {
                let id = message_id(job, at);
                let text = text.clone();
                out.push(self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "part": text_part(&text)}),
                ));
            }
            Item::Call {
                index, arguments, ..
            } => {
                let (id, arguments) = (call_item_id(job, *index), arguments.clone());
                out.push(self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": at, "arguments": arguments}),
                ));
            }
        }
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": at, "item": item}),
        ));
    }

    /// The last events: the open item done, then the response completed (or incomplete) with
    /// its output and usage.
    pub(crate) fn finish(&mut self, job: &Job, status: Status, usage: &Usage) -> Vec<SseOut> {
        let mut out = Vec::new();
        self.close(job, &mut out);
        let output = self
            .items
            .iter()
            .enumerate()
            .map(|(at, item)| item.to_value(job, at, true))
            .collect();
        let (name, status) = match status {
            Status::Completed => ("response.completed", "completed"),
            Status::Incomplete => ("response.incomplete", "incomplete"),
        };
        let body = response(job, status, output, Some(usage));
        out.push(self.event(name, json!({"response": body})));
        out
    }

    /// The event of a failure: the response failed, with the error.
    pub(crate) fn failed(&mut self, job: &Job, code: &str, message: &str) -> SseOut {
        let mut body = response(job, "failed", Vec::new(), None);
        body["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({"response": body}))
    }
}

/// The whole response of an unstreamed request: a message item for the content (when there is
/// any, or when there are no calls), then a function_call item for each call.
pub(crate) fn body(
    job: &Job,
    content: &str,
    calls: &[(String, String)],
    status: Status,
    usage: &Usage,
) -> String {
    let mut items = Vec::new();
    if !content.is_empty() || calls.is_empty() {
        items.push(Item::Message {
            text: content.to_owned(),
        });
    }
    for (index, (name, arguments)) in calls.iter().enumerate() {
        items.push(Item::Call {
            index,
            name: name.clone(),
            arguments: arguments.clone(),
        });
    }
    let output = items
        .iter()
        .enumerate()
        .map(|(at, item)| item.to_value(job, at, true))
        .collect();
    let status = match status {
        Status::Completed => "completed",
        Status::Incomplete => "incomplete",
    };
    response(job, status, output, Some(usage)).to_string()
}

/// What a stored response adds to its conversation: its input, then its answer as the
/// assistant message a chat client would send back (the calls with the ids their results name).
pub(crate) fn added_messages(
    job: &Job,
    content: &str,
    calls: &[(String, String)],
) -> Vec<ChatMessage> {
    let mut messages = meta(job).map(|m| m.added.clone()).unwrap_or_default();
    let tool_calls = calls
        .iter()
        .enumerate()
        .map(|(index, (name, arguments))| ToolCallIn {
            id: Some(call_id(job, index)),
            function: FunctionCallIn {
                name: name.clone(),
                arguments: Value::String(arguments.clone()),
            },
        })
        .collect::<Vec<_>>();
    messages.push(ChatMessage::Assistant {
        content: Some(Value::String(content.to_owned())),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
    });
    messages
}
