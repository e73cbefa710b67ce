//! Where a run's events go: the caller's [`EventSink`].

use crate::events::Event;

/// Receives every [`Event`] of a run, in order, as it happens. A closure taking `&Event` is a
/// sink; [`Events`] collects them; the trace writer records them.
pub trait EventSink: Send {
    /// One event.
    fn event(&mut self, event: &Event);
}

impl<F: FnMut(&Event) + Send> EventSink for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// A sink that keeps every event in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events(pub Vec<Event>);

impl EventSink for Events {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}
