//! Compacting a conversation that cutting old tool outputs could not make fit: the model writes
//! a summary of the task's state, and the conversation goes on from the system turn, the task,
//! the summary and the latest exchange (see [`crate::context`]).

use glm_prompts::Parsed;

use super::{Finish, Turn, too_long};
use crate::context;
use crate::events::Event;

impl Turn<'_, '_> {
    /// Compacts the conversation; the room the next turn has, or the end of the run when even
    /// the compacted conversation does not fit.
    pub(super) async fn compact(&mut self, window: usize, max_new: u32) -> Result<u32, Finish> {
        let encoder = &self.agent.encoder;
        let before = self.session.ids.len();
        let asked = context::summary_prompt(&self.session.messages, encoder, window)
            .map_err(Finish::bad_prompt)?
            .ok_or_else(|| too_long(before, before, window))?;
        self.session.replace_ids(asked);
        self.sink.event(&Event::Compact {
            step: self.session.steps,
            before,
            after: self.session.ids.len(),
            window,
            summary: None,
        });
        let generated = self.generate(context::SUMMARY_TOKENS).await?;
        self.session.steps += 1;
        self.generated += generated.ids.len();
        let summary = match glm_prompts::parse(&generated.text, &self.declared) {
            Parsed::Answer(text) => text,
            _ => generated.text.clone(),
        };
        let messages = context::compacted(&self.session.messages, summary.trim());
        let ids = context::prompt_of(&messages, encoder).map_err(Finish::bad_prompt)?;
        self.session.messages = messages;
        self.session.replace_ids(ids);
        let after = self.session.ids.len();
        self.sink.event(&Event::Compact {
            step: self.session.steps,
            before,
            after,
            window,
            summary: Some(summary.trim().to_owned()),
        });
        let need = (max_new as usize).min(context::MIN_ROOM);
        if after + need > window {
            return Err(too_long(after, before, window));
        }
        Ok(window.saturating_sub(after).min(max_new as usize) as u32)
    }
}
