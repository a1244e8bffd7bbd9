//! Event delivery: every step emits an [`Event`] on a broadcast channel. Subscribers that
//! fall more than `event_capacity` events behind lose the oldest ones (and are told so by
//! `tokio::sync::broadcast`); the engine never waits for a subscriber.

use occopus_model::InfraId;
use occopus_model::event::{Event, EventKind};
use tokio::sync::broadcast;

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Emits the events of one operation on one infrastructure.
pub(crate) struct Emitter {
    tx: broadcast::Sender<Event>,
    infra_id: InfraId,
}

impl Emitter {
    pub fn new(tx: broadcast::Sender<Event>, infra_id: InfraId) -> Self {
        Self { tx, infra_id }
    }

    pub fn emit(&self, kind: EventKind) {
        tracing::debug!(infra = %self.infra_id, event = ?kind, "event");
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(Event {
            at_ms: now_ms(),
            infra_id: self.infra_id.clone(),
            kind,
        });
    }
}
