//! What the stores keep: metadata, journal records, the replayed state, and the
//! acknowledgement of a durable write.

use crate::StateError;
use occopus_model::{InfraId, InstanceRecord, NodeId, ResolvedInfra};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// The on-disk format this version writes and reads (`"format": 1` in every file).
pub const FORMAT_VERSION: u32 = 1;

/// What is known about an infrastructure apart from its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraMeta {
    pub infra_id: InfraId,
    /// `infra_name`.
    pub name: String,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// The description file it was built from, for messages (`None` for REST/library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_path: Option<String>,
    /// The resolved description of the last build (no credentials: auth data is never
    /// part of it). Shared, not copied, with the build that writes it.
    pub infra: Arc<ResolvedInfra>,
}

/// A short view of an infrastructure for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraSummary {
    pub infra_id: InfraId,
    pub name: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_path: Option<String>,
}

/// One journal record. Instance records are full upserts (the latest record of a node id
/// wins), so replaying a journal is idempotent and a step costs one small line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
// Nearly every record is an instance record: boxing it would cost an allocation per step.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// The instance's record after a step: intent (`creating`, `dropping`), outcome
    /// (`created` with instance data and addresses, `ready`, `failed`) or a status update.
    Instance(InstanceRecord),
    /// The instance is gone (its drop finished, or its create was never attempted).
    Dropped { node_id: NodeId },
    /// An infrastructure-level fact (e.g. a config-manager environment was created);
    /// `null` removes it.
    Mark { key: String, value: Value },
}

impl Record {
    /// The key this record replaces in the replayed state, and whether it deletes it.
    pub(crate) fn key(&self) -> (String, bool) {
        match self {
            Self::Instance(r) => (format!("i:{}", r.node_id), false),
            Self::Dropped { node_id } => (format!("i:{node_id}"), true),
            Self::Mark { key, value } => (format!("m:{key}"), value.is_null()),
        }
    }
}

/// The replayed state of one infrastructure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InfraState {
    pub meta: Option<InfraMeta>,
    /// Live instances (not yet dropped), in the order they were first recorded.
    pub instances: Vec<InstanceRecord>,
    pub marks: BTreeMap<String, Value>,
}

impl InfraState {
    /// The metadata (always present for states returned by [`crate::StateStore::load`]).
    pub fn meta(&self) -> Result<&InfraMeta, StateError> {
        self.meta.as_ref().ok_or_else(|| StateError::Corrupt {
            path: "meta".into(),
            line: None,
            message: "metadata missing".into(),
        })
    }

    /// Replay records in order on top of this state.
    pub fn apply_all(&mut self, records: impl IntoIterator<Item = Record>) {
        let mut replay = Replay::new(std::mem::take(self));
        for r in records {
            replay.apply(r);
        }
        *self = replay.finish();
    }
}

/// Applies records one at a time (O(1) each), for streaming replays.
pub(crate) struct Replay {
    state: InfraState,
    index: HashMap<NodeId, usize>,
    removed: bool,
}

impl Replay {
    pub fn new(state: InfraState) -> Self {
        let index = state
            .instances
            .iter()
            .enumerate()
            .map(|(i, r)| (r.node_id.clone(), i))
            .collect();
        Self {
            state,
            index,
            removed: false,
        }
    }

    pub fn apply(&mut self, rec: Record) {
        let st = &mut self.state;
        match rec {
            Record::Instance(r) => match self.index.get(&r.node_id) {
                Some(&i) => st.instances[i] = r,
                None => {
                    self.index.insert(r.node_id.clone(), st.instances.len());
                    st.instances.push(r);
                }
            },
            Record::Dropped { node_id } => {
                if let Some(i) = self.index.remove(&node_id) {
                    // Mark the slot; compact once at the end (O(n) total).
                    st.instances[i].node_id = NodeId::new("");
                    self.removed = true;
                }
            }
            Record::Mark { key, value } => {
                if value.is_null() {
                    st.marks.remove(&key);
                } else {
                    st.marks.insert(key, value);
                }
            }
        }
    }

    pub fn finish(mut self) -> InfraState {
        if self.removed {
            self.state
                .instances
                .retain(|r| !r.node_id.as_str().is_empty());
        }
        self.state
    }
}

/// Resolves when appended records are durable. Created by [`crate::StateStore::append`];
/// the write is already queued, so dropping an `Ack` does not cancel it.
#[must_use = "await the ack before the plugin call the records protect, or drop it knowingly"]
pub struct Ack(AckInner);

enum AckInner {
    Waiting(oneshot::Receiver<Result<(), StateError>>),
    Done(Option<Result<(), StateError>>),
}

impl Ack {
    /// An ack that is already resolved.
    pub fn ready(result: Result<(), StateError>) -> Self {
        Self(AckInner::Done(Some(result)))
    }
    /// An ack resolved by whoever holds the sender (a store's writer).
    pub fn channel() -> (oneshot::Sender<Result<(), StateError>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(AckInner::Waiting(rx)))
    }
}

impl Future for Ack {
    type Output = Result<(), StateError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            AckInner::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StateError::WriterGone))),
            AckInner::Done(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
        }
    }
}
