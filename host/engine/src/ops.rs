//! What every operation (build, rollback, destroy, status) shares: the engine's parts for
//! one infrastructure, the plugin retry loop, and persisting records.

use crate::events::Emitter;
use crate::{CredentialSource, Inner};
use occopus_model::event::EventKind;
use occopus_model::plugin::{
    CmNodeRequest, ConfigManager, InstanceRef, NodeContext, PluginError, ResourceHandler,
};
use occopus_model::{Addresses, InfraId, InstanceRecord, NodeId, NodeName, ResolvedInfra, Secret};
use occopus_state::{Ack, Record};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Credentials selected for one call.
pub(crate) type Credentials = Option<Secret<Value>>;

/// One operation on one infrastructure.
pub(crate) struct OpCtx<'a> {
    pub inner: &'a Inner,
    /// The description the operation works with (for destroy: the recorded one).
    pub infra: &'a ResolvedInfra,
    pub infra_id: &'a InfraId,
    pub creds: &'a dyn CredentialSource,
    pub emit: &'a Emitter,
    /// The global parallelism limit.
    pub sem: &'a Semaphore,
}

impl OpCtx<'_> {
    pub fn node_ctx(&self, node: &NodeName, node_id: &NodeId) -> NodeContext {
        NodeContext {
            infra_id: self.infra_id.clone(),
            infra_name: self.infra.name.clone(),
            node_name: node.clone(),
            node_id: node_id.clone(),
            user_id: self.infra.user_id.clone(),
        }
    }

    /// The resource handler for `type_name` and the credentials matching the rendered
    /// `section`.
    pub fn resource_of(
        &self,
        type_name: &str,
        section: &Map<String, Value>,
    ) -> Result<(Arc<dyn ResourceHandler>, Credentials), String> {
        let handler = self
            .inner
            .host
            .resource_handler(type_name)
            .map_err(|e| e.to_string())?;
        let credentials = self
            .creds
            .select("resource", section)
            .map_err(|e| format!("credentials for the resource: {e}"))?;
        Ok((handler, credentials))
    }

    /// A recorded instance as plugins see it.
    pub fn instance_ref(
        &self,
        rec: &InstanceRecord,
        credentials: Credentials,
        instance: Value,
    ) -> InstanceRef {
        InstanceRef {
            node: self.node_ctx(&rec.node_name, &rec.node_id),
            type_name: rec.resource_type.clone(),
            resource: rec.resource.clone(),
            credentials,
            instance,
        }
    }

    /// The config manager of a (rendered) `config_management` section, with a request
    /// about one instance (`attributes` left empty).
    pub fn cm_request(
        &self,
        node: NodeContext,
        section: Map<String, Value>,
        addresses: Addresses,
    ) -> Result<(Arc<dyn ConfigManager>, CmNodeRequest), String> {
        let type_name = section
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("dummy")
            .to_string();
        let plugin = self
            .inner
            .host
            .config_manager(&type_name)
            .map_err(|e| e.to_string())?;
        let credentials = self
            .creds
            .select("config_management", &section)
            .map_err(|e| format!("credentials for config_management: {e}"))?;
        let req = CmNodeRequest {
            node,
            type_name,
            section: Value::Object(section),
            credentials,
            attributes: Value::Null,
            addresses,
        };
        Ok((plugin, req))
    }

    /// Queue records; the ack says when they are durable.
    pub fn persist(&self, records: &[Record]) -> Ack {
        self.inner.store.append(self.infra_id, records)
    }

    /// Record what a resume would re-establish anyway (an instance created or ready, a
    /// drop done): nobody waits, so the store may sync it lazily.
    pub fn persist_unawaited(&self, records: &[Record]) {
        self.inner.store.append_unawaited(self.infra_id, records);
    }

    /// Run a plugin call, retrying transient errors with backoff (honouring the plugin's
    /// `retry_after_ms`); permanent errors return at once. `what` names the call in
    /// retry events and errors.
    pub async fn retry<T, Fut>(
        &self,
        node: &NodeName,
        node_id: &NodeId,
        what: &str,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, String>
    where
        Fut: Future<Output = Result<T, PluginError>>,
    {
        let first = call().await;
        self.retry_after(node, node_id, what, first, call).await
    }

    /// [`retry`](Self::retry) whose first try has been made already (a staged create).
    pub async fn retry_after<T, Fut>(
        &self,
        node: &NodeName,
        node_id: &NodeId,
        what: &str,
        first: Result<T, PluginError>,
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, String>
    where
        Fut: Future<Output = Result<T, PluginError>>,
    {
        let policy = self.inner.opts.retry;
        let mut attempt = 0u32;
        let mut result = Some(first);
        loop {
            let r = match result.take() {
                Some(r) => r,
                None => call().await,
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt + 1 < policy.attempts => {
                    attempt += 1;
                    self.emit.emit(EventKind::NodeRetry {
                        node: node.clone(),
                        node_id: node_id.clone(),
                        attempt,
                        message: format!("{what}: {e}"),
                    });
                    let asked = Duration::from_millis(e.retry_after_ms().unwrap_or(0));
                    tokio::time::sleep(policy.backoff.delay(attempt - 1).max(asked)).await;
                }
                Err(e) if e.is_retryable() => {
                    return Err(format!("{what}: {e} (gave up after {} tries)", attempt + 1));
                }
                Err(e) => return Err(format!("{what}: {e}")),
            }
        }
    }
}
