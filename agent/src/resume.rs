//! Resuming a recorded conversation: the session a trace ends with, rebuilt token for token.
//!
//! The prompt ids of every model turn are in the trace (each `model` event's `prompt_delta`
//! and generated `ids`, after the ids a resumed run started from), so the conversation's ids are
//! known exactly, and a new user turn appended to them is what the model would have read had
//! the person typed it then: a server or engine still holding that prefix serves it from cache.

use glm_prompts::{Encoder, Message, Segment, SpecialToken, render_message};
use serde_json::Value;

use crate::events::Event;
use crate::replay::recorded_steps;
use crate::session::Session;
use crate::trace::Trace;

/// Why a trace cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// No start event: not a glm-agent trace of a run.
    #[error("it is not the trace of a glm-agent run (no start event)")]
    NoStart,
    /// No model turn completed.
    #[error("it holds no model turn to continue from")]
    NoTurn,
    /// The ids do not fit the tokenizer in use.
    #[error("it was recorded with another tokenizer: {0}")]
    Tokenizer(String),
    /// A recorded prompt is not what its events rebuild.
    #[error(
        "step {step} does not rebuild to its recorded prompt (the trace was edited or is damaged)"
    )]
    Damaged {
        /// The model turn.
        step: usize,
    },
}

/// A recorded conversation, ready to continue.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The session: its ids end after the last complete step.
    pub session: Session,
    /// The recorded run's task.
    pub task: String,
    /// The recorded settings.
    pub settings: Value,
    /// The tools the recorded run offered last, as declared.
    pub tools: Vec<Value>,
    /// Model turns recorded, and how many of them the session keeps (a last call whose result
    /// was not recorded is left out).
    pub recorded_steps: usize,
    /// See `recorded_steps`.
    pub kept_steps: usize,
}

/// The session `trace` ends with, for the tokenizer `encoder`: every id up to the end of the
/// last complete model turn (an answer, or a call whose observation was recorded). A turn cut
/// short (a call that was running when the run was killed or interrupted) is left out, so the
/// new user turn follows the last result the model saw.
pub fn resume(trace: &Trace, encoder: &Encoder) -> Result<Resumed, ResumeError> {
    let Some(Event::Start {
        task,
        settings,
        resumed,
        ..
    }) = trace
        .events
        .iter()
        .find(|e| matches!(e, Event::Start { .. }))
    else {
        return Err(ResumeError::NoStart);
    };
    let (mut sequence, steps) = recorded_steps(resumed, &trace.events);
    // Every id is this tokenizer's; every prompt (the first, and each one a cut rendered anew)
    // begins as GLM-4's do and is the one recorded.
    check_ids(&sequence, encoder)?;
    for (n, step) in steps.iter().enumerate() {
        let prompt = &sequence[step.prompt_start..step.prompt_len];
        check_start(prompt, encoder)?;
        if crate::session::prefix_hash(prompt) != step.hash {
            return Err(ResumeError::Damaged { step: n + 1 });
        }
    }
    let Some(last) = steps.last() else {
        return Err(ResumeError::NoTurn);
    };
    // The results after the last model turn, which no recorded prompt holds yet.
    let after_last = trace
        .events
        .iter()
        .rposition(|e| matches!(e, Event::Model { .. }))
        .map_or(0, |i| i + 1);
    let results: Vec<Message> = trace.events[after_last..]
        .iter()
        .filter_map(|e| match e {
            Event::Observation { metadata, text, .. } => Some(
                glm_tools::Observation {
                    metadata: metadata.clone(),
                    text: text.clone(),
                    files: Vec::new(),
                }
                .to_message(),
            ),
            _ => None,
        })
        .collect();
    // The last turn is complete when it answered or its call's results were recorded: it is
    // kept, with those results; else the session ends where its prompt did, before the
    // assistant's opening (the new user turn follows the last result).
    let observation = encoder.special_ids().id(SpecialToken::Observation);
    let called = sequence[last.ids.clone()].last() == Some(&observation);
    let recorded_steps = steps.len();
    let complete = !called || !results.is_empty();
    let (end, kept_steps) = if complete {
        (last.ids.end, recorded_steps)
    } else {
        (last.prompt_len.saturating_sub(1), recorded_steps - 1)
    };
    sequence.truncate(end);
    // The conversation after the last cut (the ids before it are no prompt's any more).
    sequence.drain(..last.prompt_start.min(sequence.len()));
    let mut messages = Vec::new();
    if complete {
        // A last call's results, rendered as the loop renders them.
        for message in results {
            let segments = render_message(&message).0;
            let mut rest = segments.as_slice();
            if let (Some(Segment::Control(first)), Some(&last)) = (rest.first(), sequence.last())
                && encoder.special_ids().id(*first) == last
            {
                rest = &rest[1..];
            }
            let ids = encoder
                .encode(rest)
                .map_err(|e| ResumeError::Tokenizer(e.to_string()))?;
            sequence.extend(ids);
            messages.push(message);
        }
    }
    let mut session = Session::continuing(sequence, kept_steps);
    session.messages = messages;
    // The recorded messages are not all here: the prompt is never rendered anew from them.
    session.partial_messages = true;
    Ok(Resumed {
        session,
        task: task.clone(),
        settings: settings.clone(),
        tools: trace.last_tools(),
        recorded_steps,
        kept_steps,
    })
}

/// The ids begin as GLM-4 prompts do with this tokenizer's control tokens, and each is one of
/// its tokens.
fn check_ids(sequence: &[u32], encoder: &Encoder) -> Result<(), ResumeError> {
    check_start(sequence, encoder)?;
    if let Some(id) = sequence.iter().find(|id| !encoder.knows(**id)) {
        return Err(ResumeError::Tokenizer(format!(
            "id {id} is beyond this tokenizer's vocabulary"
        )));
    }
    Ok(())
}

/// The ids begin with this tokenizer's `[gMASK]<sop>`.
fn check_start(sequence: &[u32], encoder: &Encoder) -> Result<(), ResumeError> {
    let special = encoder.special_ids();
    let start = [
        special.id(SpecialToken::GMask),
        special.id(SpecialToken::Sop),
    ];
    if sequence.len() < 2 || sequence[..2] != start {
        return Err(ResumeError::Tokenizer(format!(
            "its prompts begin with {:?}, this tokenizer's with {start:?}",
            &sequence[..sequence.len().min(2)]
        )));
    }
    Ok(())
}
