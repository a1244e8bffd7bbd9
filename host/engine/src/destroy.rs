//! `destroy`: drop every recorded instance in reverse dependency order (concurrent where
//! independent), drop the config-manager environments, then remove the state.
//!
//! Idempotent: instances already gone count as dropped; a destroy interrupted half-way is
//! finished by running it again (its `dropping` records are dropped again, `creating`
//! ones are looked up with `find`). Destroying an infrastructure that is not in the store
//! is [`crate::EngineError::NotFound`] unless `missing_ok`, which makes it a no-op.

use crate::drop::drop_all;
use crate::error::EngineError;
use crate::events::Emitter;
use crate::execute::finish_removal;
use crate::graph::NodeGraph;
use crate::ops::OpCtx;
use crate::{CredentialSource, DestroyOptions, Engine};
use occopus_graph::Dag;
use occopus_model::InfraId;
use occopus_model::event::EventKind;
use occopus_state::InfraState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What a destroy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestroyReport {
    pub infra_id: InfraId,
    /// `false` when the infrastructure was not in the store (`missing_ok`).
    pub existed: bool,
    /// Instances dropped.
    pub dropped: usize,
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

pub(crate) mod millis {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Engine {
    pub(crate) async fn destroy_impl(
        &self,
        infra_id: &InfraId,
        creds: Arc<dyn CredentialSource>,
        opts: DestroyOptions,
    ) -> Result<DestroyReport, EngineError> {
        let started = Instant::now();
        let inner = &self.inner;
        let _lock = self.lock(infra_id, "destroy").await?;
        let Some(mut state) = inner.store.load(infra_id).await? else {
            if opts.missing_ok {
                return Ok(DestroyReport {
                    infra_id: infra_id.clone(),
                    existed: false,
                    dropped: 0,
                    elapsed: started.elapsed(),
                });
            }
            return Err(EngineError::NotFound(infra_id.clone()));
        };
        let Some(meta) = state.meta.take() else {
            return Err(state.meta().map(|_| ()).err().map_or_else(
                || EngineError::NotFound(infra_id.clone()),
                EngineError::State,
            ));
        };
        let infra = &meta.infra;
        // A recorded description always had a valid graph; if not, drop without order
        // rather than refuse to clean up.
        let graph = NodeGraph::of(infra).unwrap_or_else(|_| NodeGraph {
            names: infra.nodes.iter().map(|n| n.name.clone()).collect(),
            index: infra
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect(),
            dag: Dag::new(infra.nodes.len()),
            described: infra.nodes.len(),
        });
        let emit = Emitter::new(inner.events.clone(), infra_id.clone());
        emit.emit(EventKind::InfraDrop {
            instances: state.instances.len(),
        });
        let sem = Semaphore::new(inner.opts.parallelism.max(1));
        let op = OpCtx {
            inner,
            infra,
            infra_id,
            creds: creds.as_ref(),
            emit: &emit,
            sem: &sem,
        };
        let InfraState {
            instances, marks, ..
        } = state;
        let result = drop_all(&op, &graph, instances).await?;
        if !result.failures.is_empty() {
            let e = EngineError::DropFailed {
                infra_id: infra_id.clone(),
                failures: result.failures,
            };
            emit.emit(EventKind::InfraFailed {
                message: e.to_string(),
                rolled_back: false,
            });
            return Err(e);
        }
        let cm_envs: BTreeMap<String, serde_json::Value> = marks
            .into_iter()
            .filter(|(k, _)| k.starts_with("cm-infra:"))
            .collect();
        finish_removal(&op, &cm_envs).await?;
        let elapsed = started.elapsed();
        emit.emit(EventKind::InfraDropped {
            elapsed_ms: elapsed.as_millis() as u64,
        });
        Ok(DestroyReport {
            infra_id: infra_id.clone(),
            existed: true,
            dropped: result.dropped,
            elapsed,
        })
    }
}
