//! Creating one instance, from its recorded intent until it is ready:
//! render (resource → config_management → `resolve_attributes` → context → attributes) →
//! updated intent if the rendered resource differs from the recorded one (awaited) →
//! config-manager `register_node` → `create` (the node id is the idempotency key) →
//! `created` with instance data and addresses → poll the resource until ready → poll the
//! config manager → health checks → `ready`.
//!
//! The creation deadline bounds all of it; the health `timeout` bounds continuous health
//! failure, counted from the first failing check after the resource is ready (Occopus's
//! rule). A resource that turns `failed` or `shutdown` fails the instance at once.
//!
//! A *staged* instance ([`stageable`]) is started before its turn, while its dependencies
//! are being created: its request is made and its plugin's `create` runs up to its first
//! effect ([`ResourceHandler::create_staged`]); at its turn only the rest is left. Nothing
//! of it is visible before the turn: no event, no record, no effect.

use crate::events::Emitter;
use crate::ops::OpCtx;
use crate::render::{self, AddressBook};
use crate::{CredentialSource, Inner};
use occopus_model::event::EventKind;
use occopus_model::plugin::{
    CmNodeRequest, ConfigManager, CreateRequest, HealthRequest, HealthStatus, InstanceRef,
    PluginError, Release, ResourceHandler,
};
use occopus_model::{
    Addresses, InfraId, InstancePhase, InstanceRecord, NodeImpl, NodeSpec, NodeStatus,
    ResolvedInfra,
};
use occopus_state::Record;
use occopus_template::Namespace;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Everything a build's instance tasks share. Owned (behind an `Arc`), so that every
/// instance runs as its own task and a build's plugin calls, rendering and recording use
/// all the runtime's worker threads.
pub(crate) struct BuildEnv {
    pub inner: Arc<Inner>,
    pub infra: Arc<ResolvedInfra>,
    pub infra_id: InfraId,
    pub creds: Arc<dyn CredentialSource>,
    pub emit: Emitter,
    /// The global parallelism limit, shared with the build's other operations.
    pub sem: Arc<Semaphore>,
    pub book: Arc<AddressBook>,
    /// Per node (description order): the attribute `mappings` of its dependencies.
    pub mappings: Vec<Vec<Value>>,
    /// Set on the first failure: instances not yet started are not started.
    pub cancel: AtomicBool,
    pub deadline: Duration,
    /// Instances in flight at once (tasks are made only for those, and for at most as
    /// many parked, staged ones).
    pub parallelism: usize,
    /// Whether dependents are staged (see [`stageable`]).
    pub stage: bool,
    /// One staging at a time (see [`create`]).
    pub stage_slot: Semaphore,
}

impl BuildEnv {
    /// The operation context the instance steps use.
    pub fn op(&self) -> OpCtx<'_> {
        OpCtx {
            inner: &self.inner,
            infra: &self.infra,
            infra_id: &self.infra_id,
            creds: self.creds.as_ref(),
            emit: &self.emit,
            sem: &self.sem,
        }
    }
}

/// How one instance ended.
pub(crate) enum Outcome {
    Ready(usize, InstanceRecord),
    Failed(usize, InstanceRecord, String),
    /// The build stopped before this instance started; no plugin was called for it.
    NotStarted(usize, InstanceRecord),
}

/// The implementation an instance uses: the recorded one if it still exists, else one
/// picked from the node id's hash (deterministic, so a resume picks the same).
pub(crate) fn choose_impl<'n>(
    node: &'n NodeSpec,
    node_id: &str,
    recorded: Option<usize>,
) -> Option<&'n NodeImpl> {
    if let Some(i) = recorded
        && let Some(imp) = node.implementations.iter().find(|m| m.index == i)
    {
        return Some(imp);
    }
    if node.implementations.is_empty() {
        return None;
    }
    let pick = (fnv1a(node_id.as_bytes()) % node.implementations.len() as u64) as usize;
    node.implementations.get(pick)
}

/// FNV-1a, 64 bit: stable across builds and platforms (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Progress {
    record: InstanceRecord,
    step: &'static str,
}

fn set_step(p: &Mutex<Progress>, step: &'static str) {
    if let Ok(mut g) = p.lock() {
        g.step = step;
    }
}

fn set_record(p: &Mutex<Progress>, rec: &InstanceRecord) {
    if let Ok(mut g) = p.lock() {
        g.record = rec.clone();
    }
}

/// Whether an instance can be staged: everything its create needs is known before its
/// dependencies are ready. Its recorded resource is final, it has no config manager (whose
/// calls must wait for the turn), and its contextualisation reads no other instance and
/// runs no command (`getip`, `cmd()` and the like).
pub(crate) fn stageable(env: &BuildEnv, node: usize, rec: &InstanceRecord) -> bool {
    let spec = &env.infra.nodes[node];
    let Some(imp) = choose_impl(spec, rec.node_id.as_str(), Some(rec.impl_index)) else {
        return false;
    };
    recorded_final(imp, rec)
        && rec.resource_type == imp.resource_type()
        && imp.config_management.is_none()
        && !render::context_reads_outside(&imp.contextualisation)
}

/// Whether the intent's resource is the one to create: it was rendered when the build
/// started, and it is final unless the section reads other instances (or could not be
/// rendered then).
fn recorded_final(imp: &NodeImpl, rec: &InstanceRecord) -> bool {
    rec.impl_index == imp.index
        && !imp.resource.values().any(render::uses_lookups)
        && !render::has_templates(&rec.resource)
}

/// A create started ahead of its turn: the plugin call, running until its first effect
/// and waiting there for its turn (the `Release`), or its result if the plugin answered
/// without one.
enum Ahead<'a> {
    Running(
        Pin<Box<dyn Future<Output = Result<Value, PluginError>> + Send + 'a>>,
        &'a Release,
    ),
    Done(Result<Value, PluginError>),
}

/// Create one instance (of node index `node`) whose intent `record` is already durable.
/// With `go`, the instance is staged: what can be done before its turn is done now (if
/// [`stageable`]), and the rest once the scheduler releases `go`.
pub(crate) async fn create(
    env: Arc<BuildEnv>,
    node: usize,
    record: InstanceRecord,
    go: Option<Release>,
) -> Outcome {
    let env = env.as_ref();
    let op = &env.op();
    // Staged: prepare the request and start the plugin's create, which stops at its
    // first effect until `turn` is released, then wait for `go` (the scheduler's word
    // that the dependencies are ready). `turn` is released only after the permit and
    // `NodeCreating`, in `steps`, so the plugin cannot go on before them even if `go`
    // comes while it is still being staged. One instance stages at a time
    // (`stage_slot`), so that staging never crowds out work whose turn has come.
    let turn = Release::new();
    let mut staged = None;
    let mut ahead = None;
    let mut work = None;
    if let Some(go) = &go {
        let slot = tokio::select! {
            biased;
            _ = go.wait() => None,
            slot = env.stage_slot.acquire() => slot.ok(),
        };
        if let Some(slot) = slot {
            staged = stage(env, node, &record).inspect(|p| {
                // Some of the turn's own work, done now: the working copy of the record
                // and the event.
                work = Some((record.clone(), creating_event(p)));
            });
            ahead = staged
                .as_ref()
                .map(|p| Ahead::Running(p.handler.create_staged(&p.req, &turn), &turn));
            // Until the call first waits: at its first effect, normally.
            if let Some(Ahead::Running(call, _)) = &mut ahead
                && let Poll::Ready(r) =
                    std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await
            {
                ahead = Some(Ahead::Done(r));
            }
            drop(slot);
        }
        let mut wait = go.wait();
        if let Some(Ahead::Running(call, _)) = &mut ahead {
            tokio::select! {
                biased;
                _ = &mut wait => {}
                r = call => ahead = Some(Ahead::Done(r)),
            }
        }
        wait.await;
    }
    // The scheduler started this instance: with a free slot it runs, even if another
    // instance started with it has failed by the time this task is first polled. Only
    // one that had to wait for a slot checks whether the build stopped meanwhile.
    let _permit = match op.sem.try_acquire() {
        Ok(p) => p,
        Err(tokio::sync::TryAcquireError::Closed) => return Outcome::NotStarted(node, record),
        Err(tokio::sync::TryAcquireError::NoPermits) => {
            // A staged call goes on being polled while it waits (it cannot pass its
            // first effect before `turn`): a call in turn may take its plugin instance
            // back meanwhile, which it does only when polled.
            let acquire = op.sem.acquire();
            tokio::pin!(acquire);
            let permit = loop {
                match &mut ahead {
                    Some(Ahead::Running(call, _)) => tokio::select! {
                        biased;
                        p = &mut acquire => break p,
                        r = call => ahead = Some(Ahead::Done(r)),
                    },
                    _ => break acquire.await,
                }
            };
            let Ok(p) = permit else {
                return Outcome::NotStarted(node, record);
            };
            if env.cancel.load(Ordering::Relaxed) {
                return Outcome::NotStarted(node, record);
            }
            p
        }
    };
    let started = Instant::now();
    let progress = Mutex::new(Progress {
        record,
        step: "rendering its templates",
    });
    let spec = &op.infra.nodes[node];
    let run = async {
        let prepared;
        let (p, rec, creating) = match (&staged, work) {
            (Some(p), Some((rec, creating))) => (p, rec, creating),
            _ => {
                let (p, rec) = prepare(env, node, spec, &progress).await?;
                prepared = p;
                let creating = creating_event(&prepared);
                (&prepared, rec, creating)
            }
        };
        steps(env, spec, &progress, p, rec, creating, ahead).await
    };
    let result = tokio::time::timeout(env.deadline, run).await;
    let Progress { mut record, step } = progress.into_inner().unwrap_or_else(|p| p.into_inner());
    let message = match result {
        Ok(Ok(ready)) => {
            op.emit.emit(EventKind::NodeReady {
                node: ready.node_name.clone(),
                node_id: ready.node_id.clone(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
            // Not awaited: a lost `ready` is re-established by a resume.
            op.persist_unawaited(&[Record::Instance(ready.clone())]);
            return Outcome::Ready(node, ready);
        }
        Ok(Err(message)) => message,
        Err(_) => format!(
            "not created and ready within the creation deadline of {} (it was {step})",
            human(env.deadline)
        ),
    };
    record.phase = InstancePhase::Failed;
    record.status = NodeStatus::Failed;
    record.message = Some(message.clone());
    op.persist_unawaited(&[Record::Instance(record.clone())]);
    op.emit.emit(EventKind::NodeFailed {
        node: record.node_name.clone(),
        node_id: record.node_id.clone(),
        message: message.clone(),
    });
    Outcome::Failed(node, record, message)
}

/// `90s`, `30min`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}min", s / 60)
    } else if s >= 1 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A config manager bound to one instance.
struct Cm {
    plugin: Arc<dyn ConfigManager>,
    req: CmNodeRequest,
}

/// What a create needs, made before it: the implementation, the plugins, the request.
struct Prepared<'e> {
    imp: &'e NodeImpl,
    handler: Arc<dyn ResourceHandler>,
    cm: Option<Cm>,
    req: CreateRequest,
}

/// Prepare a staged instance's create without waiting for anything: `None` if it cannot
/// be staged after all (a template that does not render is reported at the turn).
fn stage<'e>(env: &'e BuildEnv, node_idx: usize, rec: &InstanceRecord) -> Option<Prepared<'e>> {
    if !stageable(env, node_idx, rec) {
        return None;
    }
    let op = &env.op();
    let node = &env.infra.nodes[node_idx];
    let imp = choose_impl(node, rec.node_id.as_str(), Some(rec.impl_index))?;
    let resource = rec.resource.as_object()?.clone();
    let ctx = if render::context_has_templates(&imp.contextualisation) {
        let mut ns = render::instance_namespace(
            render::impl_vars(op.infra, op.infra_id, node, &env.mappings[node_idx], imp),
            rec.node_id.as_str(),
            env.book.clone(),
        );
        render::render_context(&op.inner.renderer, &mut ns, &imp.contextualisation).ok()?
    } else {
        render::render_context(
            &op.inner.renderer,
            &mut Namespace::new(env.book.clone()),
            &imp.contextualisation,
        )
        .ok()?
    };
    let (handler, credentials) = op.resource_of(imp.resource_type(), &resource).ok()?;
    Some(Prepared {
        imp,
        handler,
        cm: None,
        req: CreateRequest {
            node: op.node_ctx(&node.name, &rec.node_id),
            type_name: imp.resource_type().to_string(),
            resource: Value::Object(resource),
            context: ctx.context,
            attributes: ctx.attributes,
            credentials,
        },
    })
}

/// Prepare an instance's create at its turn: render (resource → config_management →
/// `resolve_attributes` → contextualisation), and record a resource that changed since
/// the intent (awaited, before any plugin call that could make something).
async fn prepare<'e>(
    env: &'e BuildEnv,
    node_idx: usize,
    node: &'e NodeSpec,
    progress: &Mutex<Progress>,
) -> Result<(Prepared<'e>, InstanceRecord), String> {
    let op = &env.op();
    let inner = op.inner;
    let r = &inner.renderer;
    let mut rec = match progress.lock() {
        Ok(g) => g.record.clone(),
        Err(p) => p.into_inner().record.clone(),
    };
    let imp = choose_impl(node, rec.node_id.as_str(), Some(rec.impl_index))
        .ok_or_else(|| format!("node `{}` has no implementation", node.name))?;
    let recorded_final = recorded_final(imp, &rec);
    // The names templates see cost a dozen copies per instance: build them only when
    // something is left to render.
    let needs_names = !recorded_final
        || imp.config_management.is_some()
        || render::context_has_templates(&imp.contextualisation);
    let mut ns = if needs_names {
        render::instance_namespace(
            render::impl_vars(op.infra, op.infra_id, node, &env.mappings[node_idx], imp),
            rec.node_id.as_str(),
            env.book.clone(),
        )
    } else {
        Namespace::new(env.book.clone())
    };
    let resource = match rec.resource.as_object() {
        Some(m) if recorded_final => m.clone(),
        _ => render::render_section(r, &ns, "resource", &imp.resource)?,
    };
    let type_name = imp.resource_type().to_string();
    let (handler, credentials) = op.resource_of(&type_name, &resource)?;
    let node_ctx = op.node_ctx(&node.name, &rec.node_id);
    let (name, id) = (&node.name, &rec.node_id.clone());

    let cm = match &imp.config_management {
        Some(section) => {
            let section = render::render_section(r, &ns, "config_management", section)?;
            let (plugin, req) = op.cm_request(node_ctx.clone(), section, Addresses::default())?;
            let extra = op
                .retry(name, id, "config manager resolve_attributes", || {
                    plugin.resolve_attributes(&req)
                })
                .await?;
            render::merge_attributes(&mut ns, extra);
            Some(Cm { plugin, req })
        }
        None => None,
    };
    let ctx = render::render_context(r, &mut ns, &imp.contextualisation)?;
    let cm = cm.map(|mut c| {
        c.req.attributes = ctx.attributes.clone();
        c
    });

    // The intent recorded before the build started holds the resource as it could be
    // rendered then; if it reads addresses that exist only now, record the final one and
    // wait for it to be durable before the plugin call.
    let resource = Value::Object(resource);
    if rec.resource != resource || rec.impl_index != imp.index || rec.resource_type != type_name {
        rec.resource = resource.clone();
        rec.impl_index = imp.index;
        rec.resource_type = type_name.clone();
        set_record(progress, &rec);
        op.persist(&[Record::Instance(rec.clone())])
            .await
            .map_err(|e| e.to_string())?;
    }
    let p = Prepared {
        imp,
        handler,
        cm,
        req: CreateRequest {
            node: node_ctx,
            type_name,
            resource,
            context: ctx.context,
            attributes: ctx.attributes,
            credentials,
        },
    };
    Ok((p, rec))
}

/// The `NodeCreating` event of a prepared create.
fn creating_event(p: &Prepared<'_>) -> EventKind {
    EventKind::NodeCreating {
        node: p.req.node.node_name.clone(),
        node_id: p.req.node.node_id.clone(),
        resource_type: p.req.type_name.clone(),
    }
}

/// The instance's turn: `create` (or the rest of the staged one), then wait until it is
/// ready.
async fn steps(
    env: &BuildEnv,
    node: &NodeSpec,
    progress: &Mutex<Progress>,
    p: &Prepared<'_>,
    mut rec: InstanceRecord,
    creating: EventKind,
    ahead: Option<Ahead<'_>>,
) -> Result<InstanceRecord, String> {
    let op = &env.op();
    let inner = op.inner;
    let Prepared {
        imp,
        handler,
        cm,
        req,
    } = p;
    let imp: &NodeImpl = imp;
    let (name, id) = (&node.name, &rec.node_id.clone());
    let type_name = req.type_name.clone();
    op.emit.emit(creating);

    if let Some(cm) = cm {
        set_step(progress, "registering with the config manager");
        op.retry(name, id, "config manager register_node", || {
            cm.plugin.register_node(&cm.req)
        })
        .await?;
    }

    set_step(progress, "creating the resource");
    let instance = match ahead {
        // Staged: its turn has come (permit, event); let the plugin go on past its
        // first effect. A retry is an ordinary create.
        Some(ahead) => {
            let first = match ahead {
                Ahead::Running(call, turn) => {
                    // This task polls the call next: no need to wake it.
                    std::future::poll_fn(|cx| {
                        turn.release_from(cx.waker());
                        Poll::Ready(())
                    })
                    .await;
                    call.await
                }
                Ahead::Done(r) => r,
            };
            op.retry_after(name, id, "create", first, || handler.create(req))
                .await?
        }
        None => op.retry(name, id, "create", || handler.create(req)).await?,
    };
    let iref = InstanceRef {
        node: req.node.clone(),
        type_name,
        resource: req.resource.clone(),
        credentials: req.credentials.clone(),
        instance: instance.clone(),
    };
    let addresses = op
        .retry(name, id, "addresses", || handler.addresses(&iref))
        .await?;
    rec.instance = Some(instance);
    rec.addresses = addresses;
    rec.phase = InstancePhase::Created;
    set_record(progress, &rec);
    op.persist_unawaited(&[Record::Instance(rec.clone())]);
    env.book.set(name.as_str(), id.as_str(), &rec.addresses);
    op.emit.emit(EventKind::NodeCreated {
        node: name.clone(),
        node_id: id.clone(),
        addresses: rec.addresses.clone(),
    });

    set_step(progress, "waiting for the resource to be ready");
    let poll = inner.opts.health_poll;
    let mut attempt = 0;
    loop {
        let st = op.retry(name, id, "state", || handler.state(&iref)).await?;
        match st.status {
            NodeStatus::Ready => break,
            s if s.is_terminal_failure() => {
                return Err(match st.message {
                    Some(m) => format!("the resource is {s}: {m}"),
                    None => format!("the resource is {s}"),
                });
            }
            _ => {
                // The plugin's hint, where it gives one, replaces the backoff; it names
                // when the instance will be ready, so it is waited for precisely (the
                // host caps it at a minute).
                match st.poll_after_ms {
                    Some(ms) => occopus_timer::sleep(Duration::from_millis(ms)).await,
                    None => tokio::time::sleep(poll.delay(attempt)).await,
                }
                attempt += 1;
            }
        }
    }
    if rec.addresses.primary.is_none() {
        // Many clouds assign addresses only once the machine runs.
        let addresses = op
            .retry(name, id, "addresses", || handler.addresses(&iref))
            .await?;
        if addresses != rec.addresses {
            rec.addresses = addresses;
            set_record(progress, &rec);
            op.persist_unawaited(&[Record::Instance(rec.clone())]);
            env.book.set(name.as_str(), id.as_str(), &rec.addresses);
        }
    }

    if let Some(cm) = cm {
        set_step(progress, "waiting for the config manager");
        let req = CmNodeRequest {
            addresses: rec.addresses.clone(),
            ..cm.req.clone()
        };
        let mut attempt = 0;
        loop {
            let s = op
                .retry(name, id, "config manager node_state", || {
                    cm.plugin.node_state(&req)
                })
                .await?;
            match s {
                NodeStatus::Ready => break,
                s if s.is_terminal_failure() => {
                    return Err(format!("the config manager says the node is {s}"));
                }
                _ => {
                    tokio::time::sleep(poll.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    if imp.health_check.has_checks() {
        set_step(progress, "waiting for its health checks to pass");
        wait_healthy(env, node, imp, &rec, &**handler, &iref).await?;
    }

    rec.phase = InstancePhase::Ready;
    rec.status = NodeStatus::Ready;
    rec.message = None;
    rec.ready_at_ms = Some(crate::events::now_ms());
    Ok(rec)
}

/// Poll the health checks until they pass, fail, or stay failing past the timeout. The
/// resource is asked again between polls: a service that dies while its checks are still
/// pending fails the node at once, with the resource's reason (an exit code and a log
/// tail), instead of after the whole health timeout.
async fn wait_healthy(
    env: &BuildEnv,
    node: &NodeSpec,
    imp: &NodeImpl,
    rec: &InstanceRecord,
    handler: &dyn ResourceHandler,
    iref: &InstanceRef,
) -> Result<(), String> {
    let op = &env.op();
    let hc = &imp.health_check;
    let checker = op
        .inner
        .host
        .health_checker(&hc.type_name)
        .map_err(|e| e.to_string())?;
    let ns = render::health_namespace(node, rec, env.book.clone());
    let section = render::render_value(
        &op.inner.renderer,
        &ns,
        "health_check",
        &Value::Object(hc.section.clone()),
    )?;
    let req = HealthRequest {
        node: op.node_ctx(&node.name, &rec.node_id),
        type_name: hc.type_name.clone(),
        section,
        addresses: rec.addresses.clone(),
    };
    let timeout = Duration::from_secs(hc.timeout_secs);
    let poll = op.inner.opts.health_poll;
    let (name, id) = (&node.name, &rec.node_id);
    let mut first_failure: Option<Instant> = None;
    let mut last_report = String::new();
    let mut attempt = 0;
    loop {
        let report = op
            .retry(name, id, "health check", || checker.check(&req))
            .await?;
        let summary = report.summary();
        match report.status {
            HealthStatus::Ready => return Ok(()),
            HealthStatus::Failed => return Err(format!("health check failed: {summary}")),
            HealthStatus::Pending => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                if since.elapsed() > timeout {
                    return Err(format!(
                        "health checks did not pass for {} (the node's health_check timeout): {summary}",
                        human(timeout)
                    ));
                }
                let st = op.retry(name, id, "state", || handler.state(iref)).await?;
                if st.status.is_terminal_failure() {
                    return Err(match st.message {
                        Some(m) => format!(
                            "the resource is {} while its health checks were pending ({summary}): {m}",
                            st.status
                        ),
                        None => format!(
                            "the resource is {} while its health checks were pending ({summary})",
                            st.status
                        ),
                    });
                }
                if summary != last_report {
                    op.emit.emit(EventKind::NodeWaiting {
                        node: name.clone(),
                        node_id: id.clone(),
                        report: summary.clone(),
                    });
                    last_report = summary;
                }
                tokio::time::sleep(poll.delay(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implementation_choice_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(human(Duration::from_secs(1800)), "30min");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_millis(300)), "300ms");
    }
}
