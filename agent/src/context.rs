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
        tokens = render(session, encoder)?.len() + 1;
    }
    if removed > 0 {
        let mut ids = render(session, encoder)?;
        ids.push(encoder.special_ids().id(SpecialToken::Assistant));
        // The next model event records the whole prompt: it no longer extends the last one.
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

/// The conversation's ids, rendered from its messages (without the assistant's opening).
fn render(session: &Session, encoder: &Encoder) -> Result<Vec<u32>, glm_prompts::Error> {
    encoder.encode(&render_segments(&session.messages, false).0)
}
