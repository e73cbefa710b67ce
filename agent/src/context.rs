//! A full context handled instead of failing: before a model turn whose prompt and answer would
//! not fit the window ([`crate::Settings::context_tokens`]), old tool outputs are cut, oldest
//! first, each replaced by a short note (the model can call the tool again); the results of the
//! latest call are kept whole. The prompt is then rendered anew from the conversation, so the
//! next `model` event records it whole and a replay makes the same cut.

use glm_prompts::{Encoder, Role, SpecialToken, render_segments};

use crate::session::Session;

/// What a cut tool output is replaced by.
pub const CUT_NOTE: &str =
    "[This tool output was removed to fit the context window; call the tool again if you need it.]";

/// The fewest tokens a model turn is given when the window is nearly full; below this, outputs
/// are cut to make room.
pub const MIN_ROOM: usize = 256;

/// How a prompt was made to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fitted {
    /// It fits: the turn may generate this many tokens.
    Fits(u32),
    /// Old outputs were cut; the turn may generate this many tokens.
    Cut {
        /// Outputs cut.
        removed: usize,
        /// Prompt tokens before the cut.
        before: usize,
        /// The turn's room after it.
        room: u32,
    },
    /// Even with every older output cut the prompt leaves less than [`MIN_ROOM`].
    TooLong {
        /// Prompt tokens as small as it gets.
        tokens: usize,
    },
}

/// Makes `session`'s prompt leave room for an answer of up to `max_new` tokens (at least
/// [`MIN_ROOM`]) in `window` tokens, cutting old tool outputs when it must.
pub fn fit(
    session: &mut Session,
    encoder: &Encoder,
    window: usize,
    max_new: u32,
) -> Result<Fitted, glm_prompts::Error> {
    let need = (max_new as usize).min(MIN_ROOM);
    let room = |ids: usize| window.saturating_sub(ids).min(max_new as usize) as u32;
    if session.ids.len() + need <= window {
        return Ok(Fitted::Fits(room(session.ids.len())));
    }
    if session.partial_messages {
        return Ok(Fitted::TooLong {
            tokens: session.ids.len(),
        });
    }
    // The results of the latest call (after the last assistant turn) stay whole.
    let last_assistant = session
        .messages
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .unwrap_or(0);
    let mut candidates: Vec<usize> = session.messages[..last_assistant]
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Observation && m.content != CUT_NOTE)
        .map(|(i, _)| i)
        .collect();
    candidates.reverse();
    let before = session.ids.len();
    let mut removed = 0;
    let mut tokens = before;
    while tokens + need > window {
        // Cut outputs until their tokens cover the excess, then render once and measure.
        let mut saved = 0;
        while tokens.saturating_sub(saved) + need > window {
            let Some(i) = candidates.pop() else { break };
            let message = &mut session.messages[i];
            saved += encoder.encode_text(&message.content)?.len();
            message.content = CUT_NOTE.to_owned();
            removed += 1;
        }
        if saved == 0 {
            break;
        }
        tokens = prompt_of(&session.messages, encoder)?.len();
    }
    if removed > 0 {
        // The next model event records the whole prompt: it no longer extends the last one.
        let ids = prompt_of(&session.messages, encoder)?;
        session.replace_ids(ids);
    }
    if session.ids.len() + need > window {
        return Ok(Fitted::TooLong {
            tokens: session.ids.len(),
        });
    }
    Ok(if removed > 0 {
        Fitted::Cut {
            removed,
            before,
            room: room(session.ids.len()),
        }
    } else {
        Fitted::Fits(room(session.ids.len()))
    })
}

/// What the model is asked when cutting tool outputs is not enough.
pub const SUMMARY_REQUEST: &str = "The conversation has grown past the context window and will be shortened. Write a summary for yourself to continue from: the task, what is done, what is known (facts, results, names of files), and what is left to do. Answer with the summary only; do not call tools.";

/// The most tokens of that summary.
pub const SUMMARY_TOKENS: u32 = 1024;

/// What the summary is put under in the shortened conversation.
pub const SUMMARY_HEADER: &str =
    "Summary of the work so far (earlier turns were removed to fit the context window):";

/// How many messages make the start that is always kept: system turns and the task (the first
/// user message).
fn head(messages: &[glm_prompts::Message]) -> usize {
    messages
        .iter()
        .position(|m| m.role == Role::User)
        .map_or(0, |i| i + 1)
}

/// Whether the conversation can be compacted: its messages are all known and the model has
/// taken a turn since the task.
pub fn can_compact(session: &Session) -> bool {
    !session.partial_messages
        && session.messages[head(&session.messages)..]
            .iter()
            .any(|m| m.role == Role::Assistant)
}

/// The prompt asking for a summary: the conversation, then [`SUMMARY_REQUEST`], its oldest turns
/// after the task dropped until the request and a summary of [`SUMMARY_TOKENS`] fit; `None`
/// when even the start does not leave that room.
pub fn summary_prompt(
    messages: &[glm_prompts::Message],
    encoder: &Encoder,
    window: usize,
) -> Result<Option<Vec<u32>>, glm_prompts::Error> {
    let start = head(messages);
    let mut asked = messages.to_vec();
    asked.push(glm_prompts::Message::new(Role::User, SUMMARY_REQUEST));
    loop {
        let ids = prompt_of(&asked, encoder)?;
        if ids.len() + SUMMARY_TOKENS as usize <= window {
            return Ok(Some(ids));
        }
        if asked.len() <= start + 1 {
            return Ok(None);
        }
        asked.remove(start);
    }
}

/// The shortened conversation: the system turns and the task, the summary under
/// [`SUMMARY_HEADER`], then the latest exchange (the last assistant turn and the results after
/// it), which the model is in the middle of.
pub fn compacted(messages: &[glm_prompts::Message], summary: &str) -> Vec<glm_prompts::Message> {
    let start = head(messages);
    let last = messages
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .filter(|i| *i >= start)
        .unwrap_or(messages.len());
    let mut out = messages[..start].to_vec();
    out.push(glm_prompts::Message::new(
        Role::User,
        format!("{SUMMARY_HEADER}\n\n{summary}"),
    ));
    out.extend_from_slice(&messages[last..]);
    out
}

/// The prompt of `messages`: rendered, then the assistant's opening.
pub fn prompt_of(
    messages: &[glm_prompts::Message],
    encoder: &Encoder,
) -> Result<Vec<u32>, glm_prompts::Error> {
    let mut ids = encoder.encode(&render_segments(messages, false).0)?;
    ids.push(encoder.special_ids().id(SpecialToken::Assistant));
    Ok(ids)
}
