//! Resuming a recorded conversation: the session a trace ends with, rebuilt token for token.
//!
//! The prompt ids of every model turn are in the trace (each `model` event's `prompt_delta`
//! and generated `ids`, after the ids a resumed run started from), so the conversation's ids are
//! known exactly, and a new user turn appended to them is what the model would have read had
//! the person typed it then: a server or engine still holding that prefix serves it from cache.

use glm_prompts::{Encoder, Message, Segment, SpecialToken, render_message};
use serde_json::Value;

use crate::events::Event;
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

/// One recorded model turn: where its prompt ends and its output ends in the id sequence.
struct Turn {
    /// Where its prompt starts: 0, or where a cut rendered the prompt anew.
    start: usize,
    prompt_end: usize,
    end: usize,
    hash: String,
    /// Whether the turn is complete: an answer, or a call whose result was recorded.
    complete: bool,
}

/// The session `trace` ends with, for the tokenizer `encoder`: every id up to the end of the
/// last complete model turn (an answer, or a call whose observation was recorded). A turn cut
/// short (a call that was running when the run was killed or interrupted) is left out, so the
/// new user turn follows the last result the model saw.
pub fn resume(trace: &Trace, encoder: &Encoder) -> Result<Resumed, ResumeError> {
    let Some(Event::Start {
        task,
        settings,
        tools,
        resumed,
        ..
    }) = trace
        .events
        .iter()
        .find(|e| matches!(e, Event::Start { .. }))
    else {
        return Err(ResumeError::NoStart);
    };
    let mut sequence: Vec<u32> = resumed.clone();
    // Where the conversation's prompt starts: 0, or where a cut rendered it anew.
    let mut start = 0;
    let mut turns: Vec<Turn> = Vec::new();
    let mut offered = tools.clone();
    // The results after the last model turn, which no recorded prompt holds yet.
    let mut results: Vec<Message> = Vec::new();
    for event in &trace.events {
        match event {
            Event::Model {
                prompt_delta,
                ids,
                prefix_hash,
                ..
            } => {
                sequence.extend(prompt_delta);
                let prompt_end = sequence.len();
                sequence.extend(ids);
                results.clear();
                let observation = encoder.special_ids().id(SpecialToken::Observation);
                turns.push(Turn {
                    start,
                    prompt_end,
                    end: sequence.len(),
                    hash: prefix_hash.clone(),
                    complete: ids.last() != Some(&observation),
                });
            }
            Event::Observation { metadata, text, .. } => {
                if let Some(last) = turns.last_mut() {
                    last.complete = true;
                }
                let observation = glm_tools::Observation {
                    metadata: metadata.clone(),
                    text: text.clone(),
                    files: Vec::new(),
                };
                results.push(observation.to_message());
            }
            Event::Tools { tools, .. } => offered = tools.clone(),
            Event::Cut { .. } | Event::Compact { .. } => start = sequence.len(),
            _ => {}
        }
    }
    // Every id is this tokenizer's; every prompt (the first, and each one a cut rendered anew)
    // begins as GLM-4's do.
    check_ids(&sequence, encoder)?;
    for turn in &turns {
        check_start(&sequence[turn.start..turn.prompt_end], encoder)?;
    }
    for (n, turn) in turns.iter().enumerate() {
        if crate::session::prefix_hash(&sequence[turn.start..turn.prompt_end]) != turn.hash {
            return Err(ResumeError::Damaged { step: n + 1 });
        }
    }
    let recorded_steps = turns.len();
    // The last turn is kept when complete; else the session ends where its prompt did, before
    // the assistant's opening (the new user turn follows the last result).
    let (end, kept_steps) = match turns.last() {
        None => return Err(ResumeError::NoTurn),
        Some(last) if last.complete => (last.end, recorded_steps),
        Some(last) => (last.prompt_end.saturating_sub(1), recorded_steps - 1),
    };
    sequence.truncate(end);
    // The conversation after the last cut (the ids before it are no prompt's any more).
    let start = turns.last().map_or(0, |t| t.start);
    sequence.drain(..start.min(sequence.len()));
    let mut messages = Vec::new();
    if Some(end) == turns.last().map(|t| t.end) {
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
        tools: offered,
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
