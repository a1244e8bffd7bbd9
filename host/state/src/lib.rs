//! Durable state of infrastructures: the [`StateStore`] trait and the embedded
//! [`FileStore`].
//!
//! Owns: what is remembered about an infrastructure between processes — its metadata (name,
//! creation time, the `ResolvedInfra` snapshot it was built from), the record of every
//! instance step (an append-only journal of [`Record`]s, compacted into snapshots), the
//! one-writer-per-infrastructure lock, and stored node definitions (`occopus import`).
//!
//! Must not: call plugins, hold credentials (records carry rendered resource sections,
//! never auth data), or decide anything about scheduling. The engine decides *what* to
//! record and *when* to wait for durability; the store makes it durable and cheap.
//!
//! Durability contract of [`StateStore::append`]: records are queued at once (the call
//! does not wait), and the returned [`Ack`] resolves when they are durable. Records appended
//! earlier to one infrastructure are durable no later than records appended after them, so
//! awaiting one ack also covers everything appended to that infrastructure before it. The
//! file store writes everything waiting from all tasks and syncs once (group commit).

mod error;
pub mod file;
mod lock_info;
mod types;

pub mod conformance;

pub use error::StateError;
pub use file::{FileStore, FileStoreOptions, StoreStats};
pub use lock_info::{InfraLock, LockHolder};
pub use types::{Ack, FORMAT_VERSION, InfraMeta, InfraState, InfraSummary, Record};

use async_trait::async_trait;
use occopus_model::InfraId;
use serde_json::Value;
use std::time::Duration;

/// Where infrastructures are remembered. Operations are small and keyed by infrastructure
/// id so that a shared store (Redis) can implement them with single-key commands.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Record a new infrastructure. Fails with [`StateError::AlreadyExists`] if its id is
    /// taken.
    async fn create_infra(&self, meta: &InfraMeta) -> Result<(), StateError>;
    /// Record a new infrastructure together with its first records: both are durable when
    /// this returns, and neither is visible without the other (a build's first intents,
    /// which must be durable before its first plugin call). By default
    /// [`create_infra`](Self::create_infra), then an awaited [`append`](Self::append); the
    /// file store writes and syncs both at once.
    async fn create_infra_with(
        &self,
        meta: &InfraMeta,
        records: &[Record],
    ) -> Result<(), StateError> {
        self.create_infra(meta).await?;
        self.append(&meta.infra_id, records).await
    }
    /// [`create_infra_with`](Self::create_infra_with) for records not made yet: a store
    /// may start writing the metadata at once, where nothing is visible, and finish when
    /// `records` arrive (a build plans, takes its lock and makes its first intents
    /// meanwhile). If the sender is dropped instead, nothing is created and this returns
    /// [`StateError::Abandoned`]. By default it waits for the records, then
    /// `create_infra_with`.
    async fn create_infra_when(
        &self,
        meta: InfraMeta,
        records: tokio::sync::oneshot::Receiver<Vec<Record>>,
    ) -> Result<(), StateError> {
        let records = records
            .await
            .map_err(|_| StateError::Abandoned(meta.infra_id.clone()))?;
        self.create_infra_with(&meta, &records).await
    }
    /// Replace the metadata of an existing infrastructure (an update with a new
    /// description).
    async fn put_meta(&self, meta: &InfraMeta) -> Result<(), StateError>;
    /// Metadata, live instances (in the order they were first recorded) and marks;
    /// `None` if the infrastructure is unknown.
    async fn load(&self, id: &InfraId) -> Result<Option<InfraState>, StateError>;
    /// Queue records for durable storage; the [`Ack`] resolves once they (and everything
    /// appended to this infrastructure before them) are durable. Dropping the ack does not
    /// cancel the write. An empty list is a flush barrier.
    fn append(&self, id: &InfraId, records: &[Record]) -> Ack;
    /// Queue records nobody will wait for: records a resume re-establishes (an
    /// instance's `created` or `ready`, a drop already done). They are stored in order
    /// with the others, but a store may make them durable lazily (the file store syncs
    /// them with the next awaited append, or within 50 ms), saving a sync per record.
    fn append_unawaited(&self, id: &InfraId, records: &[Record]) {
        drop(self.append(id, records));
    }
    /// Every known infrastructure, oldest first.
    async fn list(&self) -> Result<Vec<InfraSummary>, StateError>;
    /// Forget an infrastructure (and anything kept in its directory). `false` if it was
    /// unknown.
    async fn remove(&self, id: &InfraId) -> Result<bool, StateError>;
    /// Take the one-writer lock of an infrastructure (it need not exist yet), waiting up to
    /// `wait` for a current holder. Fails with [`StateError::Locked`] naming the holder.
    /// The lock is released when the returned guard is dropped, or when the holding
    /// process dies.
    async fn lock(
        &self,
        id: &InfraId,
        holder: &LockHolder,
        wait: Duration,
    ) -> Result<InfraLock, StateError>;
    /// Store the node definitions of one node type (opaque JSON), replacing earlier ones.
    async fn put_node_defs(&self, node_type: &str, defs: &Value) -> Result<(), StateError>;
    /// The stored node definitions of a node type, if any.
    async fn get_node_defs(&self, node_type: &str) -> Result<Option<Value>, StateError>;
    /// Node types with stored definitions, sorted.
    async fn list_node_defs(&self) -> Result<Vec<String>, StateError>;
}
