//! `build`: plan, then execute exactly that plan.
//!
//! 1. Take the infrastructure's lock; load its state; compute the plan.
//! 2. Make the intents (`creating`) of the first wave (the nodes that start at once) and
//!    the config-manager marks the plan needs. A new infrastructure records its metadata
//!    and these in one durable step (written meanwhile when the id is new).
//! 3. An update: record the new description, run the drops of the plan (removed nodes,
//!    scale-down, failed instances; reverse order), then commit the first intents.
//! 4. Create the config-manager environments. The scheduler makes and commits the other
//!    intents once it has started the first wave, and starts nothing else before that
//!    second commit is durable.
//! 5. Per-edge scheduling: a node's instances start as soon as every node it depends on
//!    has all its instances ready; every instance runs as its own task (so a build uses
//!    every worker thread); a global semaphore bounds instances in flight. O(nodes +
//!    edges): the scheduler reacts to completions, it never polls. Dependents of a node
//!    that stays in flight are staged (see [`schedule`]): their creates run ahead up to
//!    their plugins' first effect and go on at their turn.
//! 6. On the first failure: start nothing new; report the nodes downstream of it once
//!    each (`NodeSkipped`); let in-flight instances finish; then roll back what this build
//!    created (reverse order) unless `keep_on_failure`.

use crate::drop::drop_all;
use crate::error::{AfterFailure, BuildError, EngineError, NodeFailure};
use crate::events::{Emitter, now_ms};
use crate::graph::NodeGraph;
use crate::instance::{self, BuildEnv, Outcome};
use crate::ops::OpCtx;
use crate::{BuildOptions, BuildReport, CredentialSource, Engine, plan, render};
use occopus_graph::{Dag, ReadySet};
use occopus_model::event::EventKind;
use occopus_model::plugin::{CmInfraRequest, PluginKind, Release};
use occopus_model::{
    Action, Addresses, InfraId, InstancePhase, InstanceRecord, NodeId, NodeName, NodeStatus, Plan,
    ResolvedInfra,
};
use occopus_state::{InfraMeta, Record, StateError};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Routing problems found before anything is touched: every type the plan will use must
/// have a plugin.
pub(crate) fn preflight<'a>(
    engine: &Engine,
    infra: &'a ResolvedInfra,
    plan: &Plan,
) -> Result<(), EngineError> {
    let host = &engine.inner.host;
    let mut creating: Vec<bool> = vec![false; infra.nodes.len()];
    let index: HashMap<&NodeName, usize> = infra
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (&n.name, i))
        .collect();
    for a in &plan.actions {
        if let Action::Create { node, .. } = a
            && let Some(&i) = index.get(node)
        {
            creating[i] = true;
        }
    }
    // Each problem once, with the nodes it concerns (a missing plugin is one problem
    // however many nodes use the type), in the order first seen; for a missing plugin,
    // also its kind and type, for the one-line answer when none of that kind is loaded.
    struct Problem<'n> {
        text: String,
        nodes: Vec<&'n NodeName>,
        missing: Option<String>,
    }
    let mut problems: Vec<Problem<'a>> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut kinds_loaded = false;
    let mut note = |node: &'a NodeName, text: String, missing: Option<String>| {
        let i = *seen.entry(text.clone()).or_insert_with(|| {
            problems.push(Problem {
                text,
                nodes: Vec::new(),
                missing,
            });
            problems.len() - 1
        });
        if problems[i].nodes.last() != Some(&node) {
            problems[i].nodes.push(node);
        }
    };
    for (node, _) in infra.nodes.iter().zip(&creating).filter(|(_, c)| **c) {
        if node.implementations.is_empty() {
            note(
                &node.name,
                format!("no implementation of type `{}`", node.type_name),
                None,
            );
        }
        for imp in &node.implementations {
            if let Err(e) = host.resource_handler(imp.resource_type()) {
                kinds_loaded |= !e.known.is_empty();
                note(&node.name, e.to_string(), Some(missing_type(&e)));
            }
            if let Some(cm) = &imp.config_management {
                let t = cm.get("type").and_then(Value::as_str).unwrap_or("dummy");
                if let Err(e) = host.config_manager(t) {
                    kinds_loaded |= !e.known.is_empty();
                    note(&node.name, e.to_string(), Some(missing_type(&e)));
                }
            }
            if imp.health_check.has_checks()
                && let Err(e) = host.health_checker(&imp.health_check.type_name)
            {
                kinds_loaded |= !e.known.is_empty();
                note(&node.name, e.to_string(), Some(missing_type(&e)));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let missing: Option<Vec<String>> = problems.iter().map(|p| p.missing.clone()).collect();
    if let Some(missing) = missing
        && !kinds_loaded
    {
        // Every problem is a plugin kind of which none is loaded: one cause, one line.
        return Err(EngineError::Invalid(format!(
            "no plugin of the kinds this build needs is loaded (check --plugin-dir); it needs {}",
            and_list(&missing)
        )));
    }
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", node_list(&p.nodes), p.text))
        .collect();
    Err(EngineError::Invalid(text.join("; ")))
}

/// "resource-handler `sim`".
fn missing_type(e: &occopus_model::plugin::NoPlugin) -> String {
    format!("{} `{}`", e.kind, e.type_name)
}

/// "x", "x and y", "x, y and z".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "node `a`", "nodes `a`, `b` and `c`", "nodes `a`, `b`, `c` and 997 more".
fn node_list(nodes: &[&NodeName]) -> String {
    const SHOWN: usize = 3;
    let quoted = |n: &[&NodeName]| n.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
    match nodes {
        [one] => format!("node `{one}`"),
        _ if nodes.len() <= SHOWN + 1 => format!("nodes {}", and_list(&quoted(nodes))),
        _ => format!(
            "nodes {} and {} more",
            quoted(&nodes[..SHOWN]).join(", "),
            nodes.len() - SHOWN
        ),
    }
}

/// A new infrastructure's creation started before the build has planned
/// ([`StateStore::create_infra_when`](occopus_state::StateStore::create_infra_when)):
/// finished with the first intents, or abandoned (nothing is created).
struct EarlyCreate {
    infra_id: InfraId,
    created_at_ms: u64,
    records: tokio::sync::oneshot::Sender<Vec<Record>>,
    task: tokio::task::JoinHandle<Result<(), StateError>>,
}

impl EarlyCreate {
    fn start(store: Arc<dyn occopus_state::StateStore>, meta: InfraMeta) -> Self {
        let (records, rx) = tokio::sync::oneshot::channel();
        let (infra_id, created_at_ms) = (meta.infra_id.clone(), meta.created_at_ms);
        let task = tokio::spawn(async move { store.create_infra_when(meta, rx).await });
        Self {
            infra_id,
            created_at_ms,
            records,
            task,
        }
    }

    async fn finish(self, records: Vec<Record>) -> Result<(), StateError> {
        // A send fails only if the task is gone; its result says why.
        let _ = self.records.send(records);
        self.task.await.unwrap_or(Err(StateError::WriterGone))
    }

    async fn abandon(self) {
        drop(self.records);
        let _ = self.task.await;
    }
}

/// How long a node is in flight before its dependents are staged: long enough that
/// nodes ready within moments (a fast or simulated backend) cost no staging, short next
/// to the seconds a cloud takes.
const STAGE_AFTER: std::time::Duration = std::time::Duration::from_millis(5);

/// What the scheduler saw.
#[derive(Default)]
struct Sched {
    /// Instances that became ready (their records are in the store).
    ready: Vec<NodeId>,
    failed: Vec<(InstanceRecord, String)>,
    not_started: Vec<InstanceRecord>,
    skipped: Vec<NodeName>,
    unstarted_nodes: Vec<NodeName>,
    /// The intents after the first wave could not be stored: nothing more was started.
    store_error: Option<StateError>,
}

impl Engine {
    pub(crate) async fn build_impl(
        &self,
        shared_infra: Arc<ResolvedInfra>,
        creds: Arc<dyn CredentialSource>,
        opts: BuildOptions,
    ) -> Result<BuildReport, BuildError> {
        let started = Instant::now();
        // A new infrastructure (no id given): its metadata is written while the build
        // plans, takes its lock and makes its first intents (`create_infra_when`).
        let mut early = match &opts.infra_id {
            None => {
                let meta = InfraMeta {
                    infra_id: InfraId::new(uuid::Uuid::new_v4().to_string()),
                    name: shared_infra.name.clone(),
                    created_at_ms: now_ms(),
                    description_path: opts.description_path.clone(),
                    infra: shared_infra.clone(),
                };
                Some(EarlyCreate::start(self.inner.store.clone(), meta))
            }
            Some(_) => None,
        };
        let result = self
            .build_body(started, shared_infra, creds, opts, &mut early)
            .await;
        // A build that stopped before its first intents creates nothing.
        if let Some(early) = early {
            early.abandon().await;
        }
        result
    }

    async fn build_body(
        &self,
        started: Instant,
        shared_infra: Arc<ResolvedInfra>,
        creds: Arc<dyn CredentialSource>,
        opts: BuildOptions,
        early: &mut Option<EarlyCreate>,
    ) -> Result<BuildReport, BuildError> {
        let infra: &ResolvedInfra = &shared_infra;
        let name = infra.name.as_str();
        let graph = NodeGraph::of(infra).map_err(|e| BuildError::engine(None, name, e))?;
        // A new infrastructure is checked before anything is written for it, so a build
        // refused for a missing plugin names no infrastructure and leaves nothing behind.
        let new_plan = match opts.infra_id {
            None => {
                let plan = plan::compute(infra, &graph, None);
                preflight(self, infra, &plan).map_err(|e| BuildError::engine(None, name, e))?;
                Some(plan)
            }
            Some(_) => None,
        };
        let infra_id = match (&opts.infra_id, early.as_ref()) {
            (Some(id), _) => id.clone(),
            (None, Some(e)) => e.infra_id.clone(),
            (None, None) => InfraId::new(uuid::Uuid::new_v4().to_string()),
        };
        let fail = |e: EngineError| BuildError::engine(Some(infra_id.clone()), name, e);
        let inner = &self.inner;
        let _lock = self.lock(&infra_id, "build").await.map_err(&fail)?;
        let state = inner
            .store
            .load(&infra_id)
            .await
            .map_err(|e| fail(e.into()))?;
        let plan = match (new_plan, &state) {
            // A fresh id has no state: the plan checked above stands.
            (Some(plan), None) => plan,
            _ => {
                let plan = plan::compute(infra, &graph, state.as_ref());
                preflight(self, infra, &plan).map_err(&fail)?;
                plan
            }
        };

        let is_new = state.is_none();
        let created_at_ms = match (&state, early.as_ref()) {
            (Some(s), _) => s.meta().map_err(|e| fail(e.into()))?.created_at_ms,
            (None, Some(e)) => e.created_at_ms,
            (None, None) => now_ms(),
        };
        let state = state.unwrap_or_default();
        let recorded: HashMap<&NodeId, &InstanceRecord> =
            state.instances.iter().map(|r| (&r.node_id, r)).collect();

        // Intents of every create, and the config-manager environments they need.
        let book = Arc::new(render::AddressBook::new(infra, &state.instances));
        let mut jobs: Vec<Vec<InstanceRecord>> = infra
            .nodes
            .iter()
            .map(|n| Vec::with_capacity(n.scaling.min as usize))
            .collect();
        // The first wave: nodes with creates none of whose dependencies has any (they
        // start at once; the scheduler's initial ready set). Their intents, and the
        // config-manager marks, are committed before anything starts; the others' once
        // the first wave has started, and before any of them starts.
        let mut creates = vec![false; infra.nodes.len()];
        for a in &plan.actions {
            if let Action::Create { node, node_id, .. } = a
                && let Some(&i) = graph.index.get(node)
                && (recorded.contains_key(node_id)
                    || instance::choose_impl(&infra.nodes[i], node_id.as_str(), None).is_some())
            {
                creates[i] = true;
            }
        }
        let first_wave: Vec<bool> = (0..creates.len())
            .map(|i| creates[i] && graph.dag.dependees(i).iter().all(|&d| !creates[d]))
            .collect();
        let mut first_intents: Vec<Record> = Vec::new();
        // New instances after the first wave: their intents are made by the scheduler
        // once the first wave has started.
        let mut later: Vec<(usize, NodeId)> = Vec::new();
        let mut cm_envs: BTreeMap<String, Value> = BTreeMap::new();
        let mut mappings: Vec<Vec<Value>> = vec![Vec::new(); infra.nodes.len()];
        for e in &infra.edges {
            if let Some(&i) = graph.index.get(&e.dependent) {
                mappings[i].extend(e.mappings.iter().cloned());
            }
        }
        for a in &plan.actions {
            let Action::Create { node, node_id, .. } = a else {
                continue;
            };
            let Some(&i) = graph.index.get(node) else {
                continue;
            };
            let spec = &infra.nodes[i];
            let recorded_impl = recorded.get(node_id).map(|r| r.impl_index);
            let Some(imp) = instance::choose_impl(spec, node_id.as_str(), recorded_impl) else {
                continue;
            };
            if let Some(cm) = &imp.config_management {
                let t = cm.get("type").and_then(Value::as_str).unwrap_or("dummy");
                let endpoint = cm.get("endpoint").and_then(Value::as_str).unwrap_or("");
                let key = format!("cm-infra:{t}:{endpoint}");
                // The mark is written before the call (intent) and marked `created` after
                // it, so a resume repeats an unfinished create.
                let done = state
                    .marks
                    .get(&key)
                    .is_some_and(|m| m["created"] == json!(true));
                if !done {
                    cm_envs.insert(key, json!({"type": t, "section": cm, "created": false}));
                }
            }
            match recorded.get(node_id) {
                Some(r) => jobs[i].push((*r).clone()),
                None if first_wave[i] => {
                    let rec = new_intent(
                        infra,
                        &infra_id,
                        &inner.renderer,
                        &book,
                        i,
                        &mappings[i],
                        node_id,
                    );
                    first_intents.push(Record::Instance(rec.clone()));
                    jobs[i].push(rec);
                }
                None => later.push((i, node_id.clone())),
            }
        }
        for (key, value) in &cm_envs {
            first_intents.push(Record::Mark {
                key: key.clone(),
                value: value.clone(),
            });
        }

        // The metadata. A new infrastructure's first intents are made durable with it, in
        // one step (its metadata written meanwhile, when the id is new); an update's
        // after the plan's drops.
        let saved = match (is_new, early.take()) {
            (true, Some(early)) => early.finish(std::mem::take(&mut first_intents)).await,
            (new, _) => {
                let meta = InfraMeta {
                    infra_id: infra_id.clone(),
                    name: infra.name.clone(),
                    created_at_ms,
                    description_path: opts.description_path.clone(),
                    infra: shared_infra.clone(),
                };
                if new {
                    inner.store.create_infra_with(&meta, &first_intents).await
                } else {
                    inner.store.put_meta(&meta).await
                }
            }
        };
        saved.map_err(|e| fail(e.into()))?;

        let emit = Emitter::new(inner.events.clone(), infra_id.clone());
        emit.emit(EventKind::InfraStart {
            name: infra.name.clone(),
            creates: plan.creates(),
            drops: plan.drops(),
        });
        let parallelism = opts.parallelism.unwrap_or(inner.opts.parallelism).max(1);
        let sem = Arc::new(Semaphore::new(parallelism));
        let op = OpCtx {
            inner,
            infra,
            infra_id: &infra_id,
            creds: creds.as_ref(),
            emit: &emit,
            sem: &sem,
        };

        let stop = |failures: Vec<NodeFailure>, cause: Option<EngineError>| {
            let e = BuildError {
                infra_id: Some(infra_id.clone()),
                name: name.to_string(),
                cause,
                failures,
                skipped: Vec::new(),
                not_started: Vec::new(),
                after: AfterFailure::NothingCreated,
            };
            emit.emit(EventKind::InfraFailed {
                message: e.to_string(),
                rolled_back: false,
            });
            e
        };

        // Drops of the plan.
        let to_drop: Vec<InstanceRecord> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Drop { node_id, .. } => recorded.get(node_id).map(|r| (*r).clone()),
                _ => None,
            })
            .collect();
        let dropped = drop_all(&op, &graph, to_drop)
            .await
            .map_err(|e| stop(Vec::new(), Some(e.into())))?;
        if !dropped.failures.is_empty() {
            return Err(stop(dropped.failures, None));
        }

        if !is_new {
            op.persist(&first_intents)
                .await
                .map_err(|e| stop(Vec::new(), Some(e.into())))?;
        }
        drop(first_intents);
        if let Err(message) = create_cm_envs(&op, &cm_envs).await {
            let cleanup: Vec<Record> = jobs
                .iter()
                .flatten()
                .filter(|r| !recorded.contains_key(&r.node_id))
                .map(|r| Record::Dropped {
                    node_id: r.node_id.clone(),
                })
                .collect();
            let _ = op.persist(&cleanup).await;
            return Err(stop(Vec::new(), Some(EngineError::Invalid(message))));
        }

        let env = Arc::new(BuildEnv {
            inner: self.inner.clone(),
            infra: shared_infra.clone(),
            infra_id: infra_id.clone(),
            creds: creds.clone(),
            emit: Emitter::new(inner.events.clone(), infra_id.clone()),
            sem: sem.clone(),
            book,
            mappings,
            cancel: AtomicBool::new(false),
            deadline: opts.create_deadline.unwrap_or(inner.opts.create_deadline),
            parallelism,
            stage: inner.opts.stage,
            stage_slot: Semaphore::new(1),
        });
        let mut sched = schedule(&env, &graph, jobs, later).await;
        // Freeing what the instance tasks shared (thousands of small allocations made on
        // other threads: 1.5 ms at 1,000 nodes) is left to a blocking thread, off the
        // build's result.
        tokio::task::spawn_blocking(move || drop(env));
        let op = &op;
        if sched.failed.is_empty() && sched.store_error.is_none() {
            op.persist(&[])
                .await
                .map_err(|e| stop(Vec::new(), Some(e.into())))?;
            let elapsed = started.elapsed();
            op.emit.emit(EventKind::InfraReady {
                elapsed_ms: elapsed.as_millis() as u64,
            });
            return Ok(BuildReport {
                infra_id: infra_id.clone(),
                created: sched.ready.len(),
                dropped: dropped.dropped,
                kept: plan.keeps(),
                plan,
                elapsed,
            });
        }

        // Failure: forget the intents of this build that never started, then roll back or
        // keep. An instance resumed from an earlier run may already exist in the cloud, so
        // it is never just forgotten: a rollback drops it through its plugin like the rest.
        let (resumed, fresh): (Vec<&InstanceRecord>, Vec<&InstanceRecord>) = sched
            .not_started
            .iter()
            .partition(|r| recorded.contains_key(&r.node_id));
        let never: Vec<Record> = fresh
            .iter()
            .map(|r| Record::Dropped {
                node_id: r.node_id.clone(),
            })
            .collect();
        drop(op.persist(&never));
        let failures: Vec<NodeFailure> = sched
            .failed
            .iter()
            .map(|(r, m)| NodeFailure {
                node: r.node_name.clone(),
                node_id: r.node_id.clone(),
                message: m.clone(),
            })
            .collect();
        // What this build created, as the store has it now.
        let touched_ids: HashSet<NodeId> = sched
            .ready
            .into_iter()
            .chain(sched.failed.iter().map(|(r, _)| r.node_id.clone()))
            .chain(resumed.iter().map(|r| r.node_id.clone()))
            .collect();
        let touched: Vec<InstanceRecord> = match op.persist(&[]).await {
            Ok(()) => match inner.store.load(&infra_id).await {
                Ok(Some(st)) => st
                    .instances
                    .into_iter()
                    .filter(|r| touched_ids.contains(&r.node_id))
                    .collect(),
                Ok(None) => Vec::new(),
                Err(e) => return Err(stop(Vec::new(), Some(e.into()))),
            },
            Err(e) => return Err(stop(Vec::new(), Some(e.into()))),
        };
        let mut cause = sched.store_error.take().map(EngineError::from);
        let after = if opts.keep_on_failure {
            AfterFailure::Kept {
                instances: touched.len(),
            }
        } else {
            match drop_all(op, &graph, touched).await {
                Ok(r) => {
                    if is_new && r.failures.is_empty() {
                        // Nothing of a new infrastructure is left: forget it entirely
                        // (Occopus's rollback of a first build).
                        if let Err(e) = finish_removal(op, &cm_envs).await {
                            cause = Some(e);
                        }
                    }
                    AfterFailure::RolledBack {
                        dropped: r.dropped,
                        leaked: r.failures,
                    }
                }
                Err(e) => {
                    cause = Some(e.into());
                    AfterFailure::RolledBack {
                        dropped: 0,
                        leaked: Vec::new(),
                    }
                }
            }
        };
        if matches!(after, AfterFailure::Kept { .. }) {
            let _ = op.persist(&[]).await;
        }
        let err = BuildError {
            infra_id: Some(infra_id.clone()),
            name: name.to_string(),
            cause,
            failures,
            skipped: sched.skipped,
            not_started: sched.unstarted_nodes,
            after,
        };
        op.emit.emit(EventKind::InfraFailed {
            message: err.to_string(),
            rolled_back: matches!(err.after, AfterFailure::RolledBack { .. }),
        });
        Err(err)
    }
}

/// The intent of a new instance of node `i`: its implementation picked from the node id,
/// its resource rendered where it can be already (best effort: a resource that reads
/// other nodes' addresses is recorded unrendered here and re-recorded before its create).
fn new_intent(
    infra: &ResolvedInfra,
    infra_id: &InfraId,
    renderer: &occopus_template::Renderer,
    book: &Arc<render::AddressBook>,
    i: usize,
    mappings: &[Value],
    node_id: &NodeId,
) -> InstanceRecord {
    let spec = &infra.nodes[i];
    let imp = instance::choose_impl(spec, node_id.as_str(), None)
        .expect("a create is planned only for a node with an implementation");
    let resource = if imp.resource.values().any(render::has_templates) {
        let vars = render::impl_vars(infra, infra_id, spec, mappings, imp);
        let ns = render::instance_namespace(vars, node_id.as_str(), book.clone());
        render::render_section(renderer, &ns, "resource", &imp.resource)
            .unwrap_or_else(|_| imp.resource.clone())
    } else {
        imp.resource.clone()
    };
    InstanceRecord {
        node_id: node_id.clone(),
        node_name: spec.name.clone(),
        impl_index: imp.index,
        resource_type: imp.resource_type().to_string(),
        resource: Value::Object(resource),
        instance: None,
        addresses: Addresses::default(),
        phase: InstancePhase::Creating,
        status: NodeStatus::Pending,
        message: None,
        created_at_ms: now_ms(),
        ready_at_ms: None,
    }
}

/// Create the config-manager environments (Occopus's `CreateInfrastructure`).
async fn create_cm_envs(op: &OpCtx<'_>, envs: &BTreeMap<String, Value>) -> Result<(), String> {
    for (key, v) in envs {
        let req = cm_infra_request(op, v)?;
        let plugin = op
            .inner
            .host
            .config_manager(&req.type_name)
            .map_err(|e| e.to_string())?;
        let who = NodeName::new_unchecked(format!("config-manager-{}", req.type_name));
        op.retry(&who, &NodeId::new("-"), "create_infrastructure", || {
            plugin.create_infrastructure(&req)
        })
        .await
        .map_err(|e| format!("config manager `{}`: {e}", req.type_name))?;
        let mut done = v.clone();
        done["created"] = json!(true);
        drop(op.persist(&[Record::Mark {
            key: key.clone(),
            value: done,
        }]));
    }
    Ok(())
}

/// The request for a recorded config-manager environment (a mark's value).
pub(crate) fn cm_infra_request(op: &OpCtx<'_>, mark: &Value) -> Result<CmInfraRequest, String> {
    let type_name = mark["type"].as_str().unwrap_or("dummy").to_string();
    let section = mark["section"].as_object().cloned().unwrap_or_default();
    let credentials = op
        .creds
        .select(PluginKind::ConfigManager.section(), &section)
        .map_err(|e| format!("credentials for config_management: {e}"))?;
    Ok(CmInfraRequest {
        infra_id: op.infra_id.clone(),
        type_name,
        section: Value::Object(section),
        credentials,
    })
}

/// Drop the config-manager environments and remove the state of an infrastructure whose
/// instances are all gone.
pub(crate) async fn finish_removal(
    op: &OpCtx<'_>,
    cm_envs: &BTreeMap<String, Value>,
) -> Result<(), EngineError> {
    let mut failures = Vec::new();
    for (key, v) in cm_envs {
        let result = match cm_infra_request(op, v) {
            Ok(req) => match op.inner.host.config_manager(&req.type_name) {
                Ok(plugin) => {
                    let who = NodeName::new_unchecked(format!("config-manager-{}", req.type_name));
                    op.retry(&who, &NodeId::new("-"), "drop_infrastructure", || {
                        plugin.drop_infrastructure(&req)
                    })
                    .await
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        if let Err(message) = result {
            failures.push(NodeFailure {
                node: NodeName::new_unchecked("config-manager"),
                node_id: NodeId::new(key.clone()),
                message,
            });
        }
    }
    if !failures.is_empty() {
        return Err(EngineError::DropFailed {
            infra_id: op.infra_id.clone(),
            failures,
        });
    }
    op.inner.store.remove(op.infra_id).await?;
    Ok(())
}

/// Per-edge scheduling of the creates. Every instance runs as its own task (a
/// [`JoinSet`], so dropping the build aborts them); this loop only starts tasks and reacts
/// to their outcomes.
///
/// Staging: once every dependency of a node has started, its [`instance::stageable`]
/// instances are started as *parked* tasks, which prepare their create and run the
/// plugin's `create` up to its first effect, then wait for their `go`, released when the
/// node's turn comes (so a wide fan-out's dependents do not all start from nothing at the
/// moment their dependency is ready). At most `parallelism` tasks are parked at once, on
/// top of the `parallelism` running ones; a parked task holds no parallelism permit.
/// When the build stops (a failure), parked tasks are aborted: they did nothing.
async fn schedule(
    env: &Arc<BuildEnv>,
    graph: &NodeGraph,
    mut jobs: Vec<Vec<InstanceRecord>>,
    later: Vec<(usize, NodeId)>,
) -> Sched {
    let dag = &graph.dag;
    let mut remaining: Vec<usize> = jobs.iter().map(Vec::len).collect();
    for &(i, _) in &later {
        remaining[i] += 1;
    }
    let include: Vec<bool> = remaining.iter().map(|&n| n > 0).collect();
    let mut ready = ReadySet::with_subset(dag, &include);
    let mut node_failed = vec![false; jobs.len()];
    let mut skipped = vec![false; jobs.len()];
    let mut running: JoinSet<Outcome> = JoinSet::new();
    // What each task works on, to report an instance whose task panicked.
    let mut in_flight: HashMap<tokio::task::Id, (usize, InstanceRecord)> = HashMap::new();
    // Ready instances wait here, so at most `parallelism` tasks run at once.
    let mut queue: VecDeque<(usize, InstanceRecord)> = VecDeque::new();
    let mut sched = Sched::default();
    let mut drained = vec![false; jobs.len()];
    let mut prepared = vec![false; jobs.len()];
    // Nodes whose turn has come, and nodes whose staging was decided.
    let mut started = vec![false; jobs.len()];
    let mut stage_decided = vec![false; jobs.len()];
    // Nodes whose dependents are staged once they have been in flight `STAGE_AFTER`.
    let mut stage_due: VecDeque<(Instant, usize)> = VecDeque::new();
    // Parked tasks: per node their `go`, and their abort handles.
    let mut staged: Vec<Vec<(Release, tokio::task::Id)>> = vec![Vec::new(); jobs.len()];
    let mut parked: HashMap<tokio::task::Id, tokio::task::AbortHandle> = HashMap::new();
    let mut aborted: HashSet<tokio::task::Id> = HashSet::new();
    // The new instances after the first wave: their intents are made, encoded and
    // committed once the first wave has started; nothing else starts before that commit
    // is durable.
    let mut later = (!later.is_empty()).then_some(later);
    let mut later_commit: Option<occopus_state::Ack> = None;
    let mut first_pass = true;
    let mut health_prepared = false;
    loop {
        if !first_pass
            && ready.ready_count() > 0
            && let Some(commit) = later_commit.take()
            && let Err(e) = commit.await
        {
            env.cancel.store(true, Ordering::Relaxed);
            sched.store_error = Some(e);
        }
        first_pass = false;
        let mut turns: Vec<usize> = Vec::new();
        if env.cancel.load(Ordering::Relaxed) {
            for (i, rec) in queue.drain(..) {
                drained[i] = true;
                sched.not_started.push(rec);
                remaining[i] -= 1;
            }
            // Parked instances will not have their turn; they did nothing.
            for (id, task) in parked.drain() {
                task.abort();
                aborted.insert(id);
            }
            staged.iter_mut().for_each(Vec::clear);
        } else {
            while let Some(i) = ready.pop() {
                started[i] = true;
                for (go, id) in staged[i].drain(..) {
                    parked.remove(&id);
                    go.release();
                }
                queue.extend(std::mem::take(&mut jobs[i]).into_iter().map(|r| (i, r)));
                turns.push(i);
            }
        }
        while running.len().saturating_sub(parked.len()) < env.parallelism
            && let Some((i, rec)) = queue.pop_front()
        {
            let task = running.spawn(instance::create(env.clone(), i, rec.clone(), None));
            in_flight.insert(task.id(), (i, rec));
        }
        if !health_prepared {
            // After the first wave's tasks, so that preparing does not delay their start.
            prepare_health_checks(env, &turns, &remaining);
            health_prepared = true;
        }
        if let Some(later) = later.take() {
            // A task spawned here waits in this worker's own slot until this one yields:
            // let the first wave start, then make and encode the rest here.
            tokio::task::yield_now().await;
            let mut records = Vec::with_capacity(later.len());
            for (i, node_id) in later {
                let rec = new_intent(
                    &env.infra,
                    &env.infra_id,
                    &env.inner.renderer,
                    &env.book,
                    i,
                    &env.mappings[i],
                    &node_id,
                );
                records.push(Record::Instance(rec.clone()));
                jobs[i].push(rec);
            }
            later_commit = Some(env.inner.store.append(&env.infra_id, &records));
        }
        for &i in &turns {
            if env.stage {
                stage_due.push_back((Instant::now() + STAGE_AFTER, i));
            }
            prepare_dependents(env, dag, &jobs, &mut prepared, i);
        }
        // Wait for an instance to end, or for the next node to have been in flight long
        // enough for its dependents to be staged.
        // `None`: time to stage.
        let next = match stage_due.front() {
            Some(&(due, _)) => tokio::select! {
                biased;
                joined = running.join_next_with_id() => Some(joined),
                _ = tokio::time::sleep_until(due.into()) => None,
            },
            None => Some(running.join_next_with_id().await),
        };
        let joined = match next {
            Some(Some(joined)) => joined,
            Some(None) => break,
            None => {
                let now = Instant::now();
                while let Some(&(due, i)) = stage_due.front()
                    && due <= now
                {
                    stage_due.pop_front();
                    // Still in flight (not ready, not failed), the build goes on, and no
                    // instance waits for a slot (the build is not short of parallelism or
                    // CPU: staging would only compete with work whose turn has come).
                    if remaining[i] > 0
                        && !node_failed[i]
                        && !env.cancel.load(Ordering::Relaxed)
                        && queue.is_empty()
                    {
                        for &d in dag.dependents(i) {
                            let all_started =
                                dag.dependees(d).iter().all(|&e| !include[e] || started[e]);
                            if stage_decided[d] || started[d] || !all_started {
                                continue;
                            }
                            stage_decided[d] = true;
                            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut jobs[d])
                                .into_iter()
                                .partition(|rec| instance::stageable(env, d, rec));
                            jobs[d] = later;
                            for rec in now {
                                if parked.len() >= env.parallelism {
                                    jobs[d].push(rec);
                                    continue;
                                }
                                let go = Release::new();
                                let task = running.spawn(instance::create(
                                    env.clone(),
                                    d,
                                    rec.clone(),
                                    Some(go.clone()),
                                ));
                                let id = task.id();
                                staged[d].push((go, id));
                                parked.insert(id, task);
                                in_flight.insert(id, (d, rec));
                            }
                        }
                    }
                }
                continue;
            }
        };
        let outcome = match joined {
            Ok((id, outcome)) => {
                in_flight.remove(&id);
                parked.remove(&id);
                outcome
            }
            Err(e) => {
                parked.remove(&e.id());
                let Some((i, rec)) = in_flight.remove(&e.id()) else {
                    continue;
                };
                if aborted.remove(&e.id()) {
                    Outcome::NotStarted(i, rec)
                } else {
                    Outcome::Failed(i, rec, task_failure(e))
                }
            }
        };
        match outcome {
            Outcome::Ready(i, rec) => {
                sched.ready.push(rec.node_id);
                remaining[i] -= 1;
                if remaining[i] == 0 && !node_failed[i] {
                    ready.complete(dag, i);
                }
            }
            Outcome::Failed(i, rec, message) => {
                env.cancel.store(true, Ordering::Relaxed);
                sched.failed.push((rec, message));
                remaining[i] -= 1;
                if !node_failed[i] {
                    node_failed[i] = true;
                    for b in ready.fail(dag, i) {
                        skipped[b] = true;
                        sched.skipped.push(graph.names[b].clone());
                        env.emit.emit(EventKind::NodeSkipped {
                            node: graph.names[b].clone(),
                            because: graph.names[i].clone(),
                        });
                    }
                }
            }
            Outcome::NotStarted(i, rec) => {
                drained[i] = true;
                sched.not_started.push(rec);
                remaining[i] -= 1;
            }
        }
    }
    // A build that stopped in its first wave still waits for the later intents, so that
    // the records forgetting them come after them.
    if let Some(commit) = later_commit.take()
        && let Err(e) = commit.await
    {
        sched.store_error.get_or_insert(e);
    }
    for (i, left) in jobs.into_iter().enumerate() {
        if (!left.is_empty() || drained[i]) && !skipped[i] && !node_failed[i] {
            sched.unstarted_nodes.push(graph.names[i].clone());
        }
        sched.not_started.extend(left);
    }
    sched
}

/// Node `i` has started: tell the plugin host how many creates its dependents will make
/// once it is ready, per resource type, so that it can prepare plugin instances while `i`
/// is being created. Once per dependent. (Health checkers are not announced: they are
/// needed only after a create and a wait, and preparing them would compete with the
/// creates for the CPU.)
fn prepare_dependents(
    env: &BuildEnv,
    dag: &Dag,
    jobs: &[Vec<InstanceRecord>],
    prepared: &mut [bool],
    i: usize,
) {
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for &d in dag.dependents(i) {
        if std::mem::replace(&mut prepared[d], true) {
            continue;
        }
        for rec in &jobs[d] {
            *want.entry(rec.resource_type.as_str()).or_default() += 1;
        }
    }
    for (type_name, count) in want {
        env.inner
            .host
            .prepare(PluginKind::ResourceHandler, type_name, count);
    }
}

/// At the start of a build: tell the plugin host how many health checks of each type the
/// first wave (`first`) will make, so that they, on the critical path, find a warm
/// instance when their resources are ready.
fn prepare_health_checks(env: &BuildEnv, first: &[usize], remaining: &[usize]) {
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in first {
        let types: BTreeSet<&str> = env.infra.nodes[i]
            .implementations
            .iter()
            .filter(|imp| imp.health_check.has_checks())
            .map(|imp| imp.health_check.type_name.as_str())
            .collect();
        for t in types {
            *want.entry(t).or_default() += remaining[i];
        }
    }
    for (type_name, count) in want {
        env.inner
            .host
            .prepare(PluginKind::HealthChecker, type_name, count);
    }
}

/// An instance task that did not return: an engine bug, reported as the instance's failure
/// (its plugin calls may have happened, so it is rolled back like any failed instance).
fn task_failure(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let p = e.into_panic();
        let what = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        format!("internal error: the engine's task for this instance panicked: {what}")
    } else {
        "internal error: the engine's task for this instance was cancelled".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::node_list;
    use occopus_model::NodeName;

    #[test]
    fn node_lists_are_short() {
        let names: Vec<NodeName> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| NodeName::new_unchecked(*n))
            .collect();
        let refs: Vec<&NodeName> = names.iter().collect();
        assert_eq!(node_list(&refs[..1]), "node `a`");
        assert_eq!(node_list(&refs[..2]), "nodes `a` and `b`");
        assert_eq!(node_list(&refs[..4]), "nodes `a`, `b`, `c` and `d`");
        assert_eq!(node_list(&refs), "nodes `a`, `b`, `c` and 2 more");
    }
}
