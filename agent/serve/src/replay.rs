//! Replaying a server trace: the recorded request is rendered again with today's code and the
//! recorded output read again; both are compared with what the server did.

use std::collections::HashMap;

use glm_agent::Event;
use glm_agent::replay::Divergence;
use glm_agent::trace::Trace;
use glm_prompts::Encoder;
use serde_json::Value;

use crate::api::ChatRequest;
use crate::prompt::{chat_prompt, tool_specs};
use glm_prompts::Reader;

/// What a server trace's replay found: the model turns compared (one) and the differences.
pub struct ServeReplay {
    /// Differences; empty when the replay matched.
    pub divergences: Vec<Divergence>,
}

/// Replays `trace` when a server wrote it (`None` for a run's trace).
pub fn replay_serve_trace(trace: &Trace, encoder: &Encoder) -> Result<Option<ServeReplay>, String> {
    let Some(serve) = trace.events.iter().find_map(|e| match e {
        Event::Start { settings, .. } => settings.get("serve").cloned(),
        _ => None,
    }) else {
        return Ok(None);
    };
    let Some((prompt, text)) = trace.events.iter().find_map(|e| match e {
        Event::Model {
            prompt_delta, text, ..
        } => Some((prompt_delta.clone(), text.clone())),
        _ => None,
    }) else {
        return Err("the trace has no model turn (the request was cancelled or failed)".into());
    };
    let mut divergences = Vec::new();
    let endpoint = serve.get("endpoint").and_then(Value::as_str).unwrap_or("");
    let rebuilt = match endpoint {
        "completions" => serde_json::from_value::<Vec<u32>>(serve["prompt"].clone())
            .map_err(|e| format!("the trace's prompt: {e}"))?,
        "chat.completions" => {
            let request: ChatRequest = serde_json::from_value(serve["request"].clone())
                .map_err(|e| format!("the trace's request: {e}"))?;
            let remembered: HashMap<usize, Vec<u32>> = serve["remembered"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    Some((
                        r.get("message")?.as_u64()? as usize,
                        serde_json::from_value(r.get("ids")?.clone()).ok()?,
                    ))
                })
                .collect();
            let specs = tool_specs(request.tools.as_deref().unwrap_or(&[]))
                .map_err(|e| format!("the trace's tools: {}", e.message))?;
            let names: Vec<String> = serde_json::from_value(serve["calls_read"].clone())
                .unwrap_or_else(|_| specs.iter().map(|s| s.name().to_owned()).collect());
            let built = chat_prompt(
                encoder,
                &mut |i, _| remembered.get(&i).cloned(),
                specs,
                &request.messages,
            )
            .map_err(|e| format!("the trace's request: {}", e.message))?;
            let prefill = serve["prefill"].as_str().unwrap_or("");
            let mut ids = built.ids;
            ids.extend(encoder.encode_text(prefill).map_err(|e| e.to_string())?);
            let stops: Vec<String> =
                serde_json::from_value(serve["stop"].clone()).unwrap_or_default();
            let end = stops
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
                .unwrap_or(text.len());
            compare_answer(trace, &names, prefill, &text[..end], &mut divergences);
            ids
        }
        other => return Err(format!("the trace's endpoint `{other}` is not known")),
    };
    if rebuilt != prompt {
        let at = rebuilt
            .iter()
            .zip(&prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let show = |ids: &[u32]| {
            let end = (at + 12).min(ids.len());
            encoder
                .decode(&ids[at.min(end)..end])
                .unwrap_or_else(|_| format!("{:?}", &ids[at.min(end)..end]))
        };
        divergences.insert(
            0,
            Divergence {
                step: 1,
                what: format!(
                    "the prompt differs from token {at} ({} tokens recorded, {} rebuilt)",
                    prompt.len(),
                    rebuilt.len()
                ),
                diff: format!(
                    "recorded: {:?}\nrebuilt:  {:?}",
                    show(&prompt),
                    show(&rebuilt)
                ),
            },
        );
    }
    Ok(Some(ServeReplay { divergences }))
}

/// Reads the recorded output again and compares the answer with the recorded one.
fn compare_answer(
    trace: &Trace,
    names: &[String],
    prefill: &str,
    text: &str,
    divergences: &mut Vec<Divergence>,
) {
    let mut reader = Reader::new(names);
    reader.push(prefill);
    reader.push(text);
    reader.finish();
    let recorded_calls: Vec<(String, Value)> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Call {
                name, arguments, ..
            } => Some((name.clone(), arguments.clone())),
            _ => None,
        })
        .collect();
    let calls: Vec<(String, Value)> = reader
        .calls
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|_| Value::String(c.arguments.clone())),
            )
        })
        .collect();
    if calls != recorded_calls {
        divergences.push(Divergence {
            step: 1,
            what: "the tool calls read from the output differ".into(),
            diff: format!("recorded: {recorded_calls:?}\nnow:      {calls:?}"),
        });
    }
    let recorded_answer = trace.events.iter().find_map(|e| match e {
        Event::Answer { text, .. } => Some(text.clone()),
        _ => None,
    });
    let answer = (!reader.content.is_empty() || reader.calls.is_empty()).then_some(reader.content);
    if answer != recorded_answer {
        divergences.push(Divergence {
            step: 1,
            what: "the content read from the output differs".into(),
            diff: format!("recorded: {recorded_answer:?}\nnow:      {answer:?}"),
        });
    }
}
