//! `status`: the live state of every recorded instance — the resource's own state, the
//! config manager's, one health check — combined with Occopus's rule
//! ([`NodeStatus::combine`]). Read-only: no records are written, no lock is taken.

use crate::error::EngineError;
use crate::events::Emitter;
use crate::ops::OpCtx;
use crate::render::{self, AddressBook};
use crate::{CredentialSource, Engine};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use occopus_model::plugin::{HealthRequest, HealthStatus};
use occopus_model::{
    Addresses, InfraId, InstancePhase, InstanceRecord, NodeId, NodeName, NodeSpec, NodeStatus,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The live status of an infrastructure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub infra_id: InfraId,
    pub name: String,
    /// All instances combined (`unknown` when there are none).
    pub status: NodeStatus,
    /// In the order they were recorded.
    pub instances: Vec<InstanceStatus>,
}

/// The live status of one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub node: NodeName,
    pub node_id: NodeId,
    /// Where the instance is in its life, as recorded.
    pub phase: InstancePhase,
    /// Combined status.
    pub status: NodeStatus,
    /// The resource handler's view (`None`: not asked, e.g. the create never finished).
    pub resource: Option<NodeStatus>,
    /// The config manager's view, if the node has one.
    pub config: Option<NodeStatus>,
    /// One line from the health check (`ok`, or the first failing check).
    pub health: Option<String>,
    pub addresses: Addresses,
    /// Why it is not ready, if known.
    pub message: Option<String>,
}

impl Engine {
    pub(crate) async fn status_impl(
        &self,
        infra_id: &InfraId,
        creds: Arc<dyn CredentialSource>,
    ) -> Result<StatusReport, EngineError> {
        let inner = &self.inner;
        let state = inner
            .store
            .load(infra_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(infra_id.clone()))?;
        let meta = state.meta()?;
        let emit = Emitter::new(inner.events.clone(), infra_id.clone());
        let sem = Semaphore::new(inner.opts.parallelism.max(1));
        let op = OpCtx {
            inner,
            infra: &meta.infra,
            infra_id,
            creds: creds.as_ref(),
            emit: &emit,
            sem: &sem,
        };
        let book = Arc::new(AddressBook::new(&meta.infra, &state.instances));
        let index: std::collections::HashMap<&NodeName, &NodeSpec> =
            meta.infra.nodes.iter().map(|n| (&n.name, n)).collect();
        let mut running: FuturesUnordered<_> = state
            .instances
            .iter()
            .enumerate()
            .map(|(pos, rec)| {
                let spec = index.get(&rec.node_name).copied();
                let (op, book) = (&op, book.clone());
                async move { (pos, instance_status(op, spec, rec, book).await) }
            })
            .collect();
        let mut out: Vec<Option<InstanceStatus>> = vec![None; state.instances.len()];
        while let Some((pos, s)) = running.next().await {
            out[pos] = Some(s);
        }
        let instances: Vec<InstanceStatus> = out.into_iter().flatten().collect();
        let status = if instances.is_empty() {
            NodeStatus::Unknown
        } else {
            NodeStatus::combine(&instances.iter().map(|i| i.status).collect::<Vec<_>>())
        };
        Ok(StatusReport {
            infra_id: infra_id.clone(),
            name: meta.name.clone(),
            status,
            instances,
        })
    }
}

async fn instance_status(
    op: &OpCtx<'_>,
    spec: Option<&NodeSpec>,
    rec: &InstanceRecord,
    book: Arc<AddressBook>,
) -> InstanceStatus {
    let mut s = InstanceStatus {
        node: rec.node_name.clone(),
        node_id: rec.node_id.clone(),
        phase: rec.phase,
        status: rec.status,
        resource: None,
        config: None,
        health: None,
        addresses: rec.addresses.clone(),
        message: rec.message.clone(),
    };
    let Some(instance) = rec.instance.clone() else {
        return s;
    };
    if matches!(rec.phase, InstancePhase::Dropping | InstancePhase::Dropped) {
        return s;
    }
    let _permit = op.sem.acquire().await;
    let section: Map<String, Value> = rec.resource.as_object().cloned().unwrap_or_default();
    let (handler, credentials) = match op.resource_of(&rec.resource_type, &section) {
        Ok(x) => x,
        Err(e) => {
            s.status = NodeStatus::Unknown;
            s.message = Some(e);
            return s;
        }
    };
    let iref = op.instance_ref(rec, credentials, instance);
    let node = iref.node.clone();
    let mut parts = Vec::new();
    let rh = match handler.state(&iref).await {
        Ok(st) => {
            s.message = st.message;
            st.status
        }
        Err(e) => {
            s.message = Some(format!("state: {e}"));
            NodeStatus::Unknown
        }
    };
    s.resource = Some(rh);
    parts.push(rh);
    if rh == NodeStatus::Ready
        && let Ok(a) = handler.addresses(&iref).await
    {
        s.addresses = a;
    }
    let imp = spec.and_then(|n| n.implementations.iter().find(|m| m.index == rec.impl_index));
    if let Some(section) = imp.and_then(|m| m.config_management.clone()) {
        let cm = if rh == NodeStatus::Ready {
            cm_state(op, node.clone(), section, &s.addresses).await
        } else {
            NodeStatus::Unknown
        };
        s.config = Some(cm);
        parts.push(cm);
    }
    if let (Some(imp), Some(spec)) = (imp, spec)
        && imp.health_check.has_checks()
    {
        let hc = if parts.iter().all(|p| *p == NodeStatus::Ready) {
            let mut live = rec.clone();
            live.addresses = s.addresses.clone();
            let ns = render::health_namespace(spec, &live, book);
            let section = render::render_value(
                &op.inner.renderer,
                &ns,
                "health_check",
                &Value::Object(imp.health_check.section.clone()),
            );
            match (
                section,
                op.inner.host.health_checker(&imp.health_check.type_name),
            ) {
                (Ok(section), Ok(checker)) => {
                    let req = HealthRequest {
                        node,
                        type_name: imp.health_check.type_name.clone(),
                        section,
                        addresses: s.addresses.clone(),
                    };
                    match checker.check(&req).await {
                        Ok(r) => {
                            s.health = Some(r.summary());
                            match r.status {
                                HealthStatus::Ready => NodeStatus::Ready,
                                HealthStatus::Pending => NodeStatus::Pending,
                                HealthStatus::Failed => NodeStatus::Failed,
                            }
                        }
                        Err(e) => {
                            s.health = Some(format!("health check: {e}"));
                            NodeStatus::Unknown
                        }
                    }
                }
                (Err(e), _) => {
                    s.health = Some(e);
                    NodeStatus::Unknown
                }
                (_, Err(e)) => {
                    s.health = Some(e.to_string());
                    NodeStatus::Unknown
                }
            }
        } else {
            NodeStatus::Unknown
        };
        parts.push(hc);
    }
    s.status = NodeStatus::combine(&parts);
    s
}

async fn cm_state(
    op: &OpCtx<'_>,
    node: occopus_model::plugin::NodeContext,
    section: Map<String, Value>,
    addresses: &Addresses,
) -> NodeStatus {
    let Ok((plugin, req)) = op.cm_request(node, section, addresses.clone()) else {
        return NodeStatus::Unknown;
    };
    plugin.node_state(&req).await.unwrap_or(NodeStatus::Unknown)
}
