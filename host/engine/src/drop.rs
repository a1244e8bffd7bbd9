//! Dropping a set of instances (destroy, rollback, the drops of an update): intents for
//! all of them in one durable commit, then reverse dependency order — an instance is
//! dropped once every instance that depends on its node is gone — with independent drops
//! concurrent, bounded by the global limit.
//!
//! Per instance: `destroy` with the recorded instance data; an instance whose create
//! outcome is unknown (no instance data) is first looked up with `find` (the node id is
//! the idempotency key) and destroyed if found. Gone already is success. Then the config
//! manager's `drop_node`, then the `dropped` record. Destroy is best effort: a failed
//! drop does not stop the others; it stays recorded (`dropping`) so a retry finishes it.

use crate::error::NodeFailure;
use crate::graph::NodeGraph;
use crate::ops::OpCtx;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use occopus_graph::ReadySet;
use occopus_model::event::EventKind;
use occopus_model::plugin::{CreateRequest, PluginError};
use occopus_model::{InstancePhase, InstanceRecord, NodeSpec};
use occopus_state::Record;
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// What a drop pass did.
#[derive(Debug, Default)]
pub(crate) struct DropResult {
    pub dropped: usize,
    pub failures: Vec<NodeFailure>,
}

/// Drop `records` (in any order) in reverse dependency order of `graph`.
pub(crate) async fn drop_all(
    op: &OpCtx<'_>,
    graph: &NodeGraph,
    records: Vec<InstanceRecord>,
) -> Result<DropResult, occopus_state::StateError> {
    if records.is_empty() {
        return Ok(DropResult::default());
    }
    // One durable commit of every intent before the first plugin call.
    let intents: Vec<Record> = records
        .into_iter()
        .map(|mut r| {
            r.phase = InstancePhase::Dropping;
            Record::Instance(r)
        })
        .collect();
    op.persist(&intents).await?;
    let records = intents.into_iter().filter_map(|r| match r {
        Record::Instance(i) => Some(i),
        _ => None,
    });

    // Nodes only in the state (removed from the description) have no edges.
    let mut index = graph.index.clone();
    let mut dag = graph.dag.clone();
    let mut jobs: Vec<Vec<InstanceRecord>> = vec![Vec::new(); dag.len()];
    for r in records {
        let i = match index.get(&r.node_name) {
            Some(&i) => i,
            None => {
                let i = dag.add_node();
                index.insert(r.node_name.clone(), i);
                jobs.push(Vec::new());
                i
            }
        };
        jobs[i].push(r);
    }
    let rev = dag.reversed();
    let include: Vec<bool> = jobs.iter().map(|j| !j.is_empty()).collect();
    let mut ready = ReadySet::with_subset(&rev, &include);
    let mut remaining: Vec<usize> = jobs.iter().map(Vec::len).collect();
    let mut running = FuturesUnordered::new();
    let mut result = DropResult::default();
    // Ready drops wait here, so at most `parallelism` futures exist at once.
    let mut queue: VecDeque<(usize, InstanceRecord)> = VecDeque::new();
    let limit = op.sem.available_permits().max(1);
    loop {
        while let Some(i) = ready.pop() {
            queue.extend(std::mem::take(&mut jobs[i]).into_iter().map(|r| (i, r)));
        }
        while running.len() < limit
            && let Some((i, r)) = queue.pop_front()
        {
            let spec = op.infra.nodes.get(i).filter(|_| i < graph.described);
            running.push(async move { (i, drop_one(op, spec, r).await) });
        }
        let Some((i, outcome)) = running.next().await else {
            break;
        };
        match outcome {
            Ok(()) => result.dropped += 1,
            Err(f) => result.failures.push(f),
        }
        remaining[i] -= 1;
        if remaining[i] == 0 {
            // Best effort: what this node depends on is dropped even if one of its
            // instances could not be.
            ready.complete(&rev, i);
        }
    }
    op.persist(&[]).await?;
    Ok(result)
}

/// Dropping something that is already gone is success.
fn gone_is_fine(r: Result<(), PluginError>) -> Result<(), PluginError> {
    match r {
        Err(PluginError::NotFound(_)) => Ok(()),
        r => r,
    }
}

async fn drop_one(
    op: &OpCtx<'_>,
    spec: Option<&NodeSpec>,
    mut rec: InstanceRecord,
) -> Result<(), NodeFailure> {
    let _permit = op.sem.acquire().await;
    let (name, id) = (rec.node_name.clone(), rec.node_id.clone());
    op.emit.emit(EventKind::NodeDropping {
        node: name.clone(),
        node_id: id.clone(),
    });
    match drop_steps(op, spec, &rec).await {
        Ok(()) => {
            op.persist_unawaited(&[Record::Dropped {
                node_id: id.clone(),
            }]);
            op.emit.emit(EventKind::NodeDropped {
                node: name,
                node_id: id,
            });
            Ok(())
        }
        Err(message) => {
            let message = format!("drop: {message}");
            rec.message = Some(message.clone());
            op.persist_unawaited(&[Record::Instance(rec)]);
            op.emit.emit(EventKind::NodeFailed {
                node: name.clone(),
                node_id: id.clone(),
                message: message.clone(),
            });
            Err(NodeFailure {
                node: name,
                node_id: id,
                message,
            })
        }
    }
}

async fn drop_steps(
    op: &OpCtx<'_>,
    spec: Option<&NodeSpec>,
    rec: &InstanceRecord,
) -> Result<(), String> {
    let (name, id) = (&rec.node_name, &rec.node_id);
    let section: Map<String, Value> = rec.resource.as_object().cloned().unwrap_or_default();
    let (handler, credentials) = op.resource_of(&rec.resource_type, &section)?;
    let instance = match &rec.instance {
        Some(i) => Some(i.clone()),
        None => {
            // The create may or may not have happened: ask the plugin.
            let req = CreateRequest {
                node: op.node_ctx(name, id),
                type_name: rec.resource_type.clone(),
                resource: rec.resource.clone(),
                context: None,
                attributes: Value::Null,
                credentials: credentials.clone(),
            };
            // A section the plugin rejects can have made nothing (a plugin checks its
            // section before any effect), so there is nothing to look for; without this,
            // an instance whose create was refused for its section could never be
            // dropped.
            op.retry(name, id, "find", || async {
                match handler.find(&req).await {
                    Err(PluginError::InvalidConfig { .. }) => Ok(None),
                    other => other,
                }
            })
            .await?
        }
    };
    if let Some(instance) = instance {
        let iref = op.instance_ref(rec, credentials, instance);
        op.retry(name, id, "destroy", || {
            let (h, i) = (&handler, &iref);
            async move { gone_is_fine(h.destroy(i).await) }
        })
        .await?;
    }
    let cm_section = spec
        .and_then(|s| s.implementations.iter().find(|m| m.index == rec.impl_index))
        .and_then(|m| m.config_management.clone());
    if let Some(section) = cm_section {
        let (plugin, req) = op.cm_request(op.node_ctx(name, id), section, rec.addresses.clone())?;
        op.retry(name, id, "config manager drop_node", || {
            let (p, r) = (&plugin, &req);
            async move { gone_is_fine(p.drop_node(r).await) }
        })
        .await?;
    }
    Ok(())
}
