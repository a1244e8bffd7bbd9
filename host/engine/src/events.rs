//! Event delivery: every step emits an [`Event`] on a broadcast channel and to every
//! listener. Subscribers that fall more than `event_capacity` events behind lose the
//! oldest ones (and are told so by `tokio::sync::broadcast`); listeners lose nothing (an
//! unbounded queue each: what must be complete, such as a JSON event log). The engine
//! never waits for either.

use occopus_model::InfraId;
use occopus_model::event::{Event, EventKind};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where an engine's events go: the broadcast channel and the lossless listeners.
#[derive(Clone)]
pub(crate) struct Bus {
    tx: broadcast::Sender<Event>,
    listeners: Arc<Mutex<Vec<mpsc::UnboundedSender<Event>>>>,
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            listeners: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub fn listen(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().push(tx);
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Event>>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Emits the events of one operation on one infrastructure.
pub(crate) struct Emitter {
    bus: Bus,
    infra_id: InfraId,
}

impl Emitter {
    pub fn new(bus: Bus, infra_id: InfraId) -> Self {
        Self { bus, infra_id }
    }

    pub fn emit(&self, kind: EventKind) {
        tracing::debug!(infra = %self.infra_id, event = ?kind, "event");
        let subscribed = self.bus.tx.receiver_count() > 0;
        let mut listeners = self.bus.lock();
        if !subscribed && listeners.is_empty() {
            return;
        }
        let event = Event {
            at_ms: now_ms(),
            infra_id: self.infra_id.clone(),
            kind,
        };
        // Listeners whose receiver is gone are forgotten.
        listeners.retain(|l| l.send(event.clone()).is_ok());
        drop(listeners);
        if subscribed {
            let _ = self.bus.tx.send(event);
        }
    }
}
