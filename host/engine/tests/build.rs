//! Building: per-edge scheduling, the parallelism limit, events, secrets, config managers.

mod support;

use occopus_engine::{BuildOptions, NoCredentials};
use occopus_model::event::EventKind;
use occopus_model::plugin::PluginKind;
use occopus_model::{InfraId, InstancePhase};
use occopus_state::StateStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn a_node_starts_when_its_own_dependencies_are_ready() {
    let env = Env::new();
    // a and b are independent; c depends on b only. a is slow.
    env.cloud.set(
        "a",
        Behaviour {
            create_latency: Duration::from_millis(400),
            ..Behaviour::default()
        },
    );
    let desc = infra(
        vec![node("a", 1, 1), node("b", 1, 1), node("c", 1, 1)],
        &[("c", "b")],
    );
    env.build(&desc).await;
    let a_created = &env.cloud.calls_of("create", "a")[0];
    let c_created = &env.cloud.calls_of("create", "c")[0];
    let b_health = env.cloud.calls_of("health", "b");
    assert!(
        c_created.at < a_created.at,
        "c ({:?}) must not wait for the unrelated slow a ({:?})",
        c_created.at,
        a_created.at
    );
    assert!(
        b_health.last().unwrap().at <= c_created.at,
        "c waits for b to be healthy"
    );
}

#[tokio::test]
async fn the_global_parallelism_limit_holds() {
    let mut opts = fast_options();
    opts.parallelism = 4;
    let env = Env::with_options(opts);
    let nodes: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("n{i}");
            env.cloud.set(
                &name,
                Behaviour {
                    create_latency: Duration::from_millis(20),
                    ..Behaviour::default()
                },
            );
            node(&name, 1, 1)
        })
        .collect();
    let report = env
        .engine
        .build(
            &infra(nodes, &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.created, 20);
    assert_eq!(env.cloud.max_in_flight.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn instances_of_one_node_run_concurrently() {
    let env = Env::new();
    env.cloud.set(
        "w",
        Behaviour {
            create_latency: Duration::from_millis(50),
            ..Behaviour::default()
        },
    );
    let r = env
        .engine
        .build(
            &infra(vec![node("w", 5, 5)], &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.created, 5);
    assert_eq!(env.cloud.max_in_flight.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn events_come_in_a_sensible_order() {
    let env = Env::new();
    let mut rx = env.engine.subscribe();
    env.cloud.set(
        "b",
        Behaviour {
            pending_polls: 2,
            health_pending: Some(2),
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    let r = env.build(&desc).await;
    let events = drain(&mut rx);
    assert!(events.iter().all(|e| e.infra_id == r.infra_id));
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            let node = e.kind.node().map(|n| n.to_string()).unwrap_or_default();
            let v = serde_json::to_value(&e.kind).unwrap();
            format!("{}:{node}", v["event"].as_str().unwrap())
        })
        .collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
    };
    assert_eq!(kinds[0], "infrastart:");
    assert_eq!(kinds.last().unwrap(), "infraready:");
    assert!(pos("nodecreating:a") < pos("nodecreated:a"));
    assert!(pos("nodecreated:a") < pos("nodeready:a"));
    assert!(pos("nodeready:a") < pos("nodecreating:b"));
    assert!(pos("nodecreated:b") < pos("nodewaiting:b"));
    assert!(pos("nodewaiting:b") < pos("nodeready:b"));
    assert_eq!(
        kinds.iter().filter(|k| *k == "nodewaiting:b").count(),
        1,
        "rate-limited: {kinds:?}"
    );
    match &events[0].kind {
        EventKind::InfraStart { creates, drops, .. } => assert_eq!((*creates, *drops), (2, 0)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn secrets_never_reach_state_events_or_errors() {
    let env = Env::new();
    let mut rx = env.engine.subscribe();
    env.cloud.set(
        "b",
        Behaviour {
            resource_fails: Some("quota exceeded".into()),
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    let id = InfraId::new("secret-test");
    let err = env
        .engine
        .build(
            &desc,
            Arc::new(SentinelCreds),
            BuildOptions {
                infra_id: Some(id.clone()),
                keep_on_failure: true,
                ..BuildOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        env.cloud.creds_seen.load(Ordering::SeqCst) >= 2,
        "plugins got the credentials"
    );
    env.store.append(&id, &[]).await.unwrap();
    let state_text = all_text(env.dir.path());
    assert!(state_text.contains("quota exceeded"), "state was written");
    assert!(!state_text.contains(SENTINEL), "credentials in the state");
    assert!(!format!("{err} {err:?}").contains(SENTINEL));
    env.engine
        .destroy(&id, Arc::new(SentinelCreds), Default::default())
        .await
        .unwrap();
    let events = drain(&mut rx);
    assert!(events.len() > 5);
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains(SENTINEL), "credentials in events");
    assert!(!format!("{events:?}").contains(SENTINEL));
}

#[tokio::test]
async fn templates_see_addresses_and_config_manager_attributes() {
    let env = Env::new();
    let db = node("db", 1, 1);
    let mut web = node("web", 2, 2);
    let imp = &mut web.implementations[0];
    imp.config_management = Some(
        serde_json::from_value(serde_json::json!({"type": "fakecm", "endpoint": "http://chef"}))
            .unwrap(),
    );
    imp.contextualisation = occopus_model::Contextualisation::Cloudinit {
        context_template: "#cloud-config\ndb: {{ getip('db') }}\nmods: {{ puppet.modules }}\n"
            .into(),
        attributes: serde_json::json!({}),
    };
    imp.resource.insert(
        "db_private".into(),
        serde_json::json!("{{ getprivip('db') }}"),
    );
    let desc = infra(vec![db, web], &[("web", "db")]);
    let r = env.build(&desc).await;
    let st = env.engine.recorded(&r.infra_id).await.unwrap().unwrap();
    let db_rec = st
        .instances
        .iter()
        .find(|i| i.node_name.as_str() == "db")
        .unwrap();
    let web_rec = st
        .instances
        .iter()
        .find(|i| i.node_name.as_str() == "web")
        .unwrap();
    assert_eq!(
        web_rec.resource["db_private"],
        serde_json::json!(db_rec.addresses.private)
    );
    assert!(
        web_rec.resource["label"]
            .as_str()
            .unwrap()
            .starts_with("test-infra-web-")
    );
    assert!(st.instances.iter().all(|i| i.phase == InstancePhase::Ready));
    assert_eq!(env.cloud.calls_of("cm_create_infra", "-infra-").len(), 1);
    assert_eq!(env.cloud.calls_of("cm_register", "web").len(), 2);
    assert_eq!(env.cloud.calls_of("cm_resolve", "web").len(), 2);
    env.destroy(&r.infra_id).await.unwrap();
    assert_eq!(env.cloud.calls_of("cm_drop", "web").len(), 2);
    assert_eq!(env.cloud.calls_of("cm_drop_infra", "-infra-").len(), 1);
    assert!(env.cloud.alive().is_empty());
}

#[tokio::test]
async fn a_second_writer_is_told_who_holds_the_lock() {
    let env = Env::new();
    env.cloud.set(
        "a",
        Behaviour {
            create_latency: Duration::from_millis(300),
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("a", 1, 1)], &[]);
    let id = InfraId::new("busy");
    let opts = BuildOptions {
        infra_id: Some(id.clone()),
        ..BuildOptions::default()
    };
    let first = env.try_build(&desc, opts.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        env.try_build(&desc, opts.clone()).await
    };
    let (a, b) = tokio::join!(first, second);
    a.unwrap();
    let msg = b.unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "infrastructure busy is being changed by pid {} (`occopus build`)",
            std::process::id()
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_plugin_types_fail_before_anything_happens() {
    let env = Env::new();
    let mut n = node("a", 1, 1);
    n.implementations[0]
        .resource
        .insert("type".into(), serde_json::json!("dokcer"));
    let err = env
        .try_build(&infra(vec![n], &[]), BuildOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no resource-handler plugin handles type `dokcer`"),
        "{err}"
    );
    assert!(env.cloud.calls().is_empty());
    assert!(env.engine.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_plugin_is_reported_once_for_all_its_nodes() {
    let env = Env::new();
    let nodes: Vec<_> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|name| {
            let mut n = node(name, 1, 1);
            n.implementations[0]
                .resource
                .insert("type".into(), serde_json::json!("dokcer"));
            n
        })
        .collect();
    let err = env
        .try_build(&infra(nodes, &[]), BuildOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err.matches("no resource-handler plugin handles type `dokcer`")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("nodes `a`, `b`, `c` and 3 more: no resource-handler plugin"),
        "{err}"
    );
    assert!(env.cloud.calls().is_empty());
    // Refused before an infrastructure was chosen: none is named, nothing is left.
    assert!(!err.contains("infrastructure "), "{err}");
    let infras = env.dir.path().join("infras");
    let left: Vec<_> = std::fs::read_dir(&infras)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A host with no plugin loaded at all.
struct NoPlugins;

impl occopus_model::plugin::PluginHost for NoPlugins {
    fn resource_handler(
        &self,
        t: &str,
    ) -> Result<Arc<dyn occopus_model::plugin::ResourceHandler>, occopus_model::plugin::NoPlugin>
    {
        Err(none_of(PluginKind::ResourceHandler, t))
    }
    fn health_checker(
        &self,
        t: &str,
    ) -> Result<Arc<dyn occopus_model::plugin::HealthChecker>, occopus_model::plugin::NoPlugin>
    {
        Err(none_of(PluginKind::HealthChecker, t))
    }
    fn config_manager(
        &self,
        t: &str,
    ) -> Result<Arc<dyn occopus_model::plugin::ConfigManager>, occopus_model::plugin::NoPlugin>
    {
        Err(none_of(PluginKind::ConfigManager, t))
    }
    fn check_section(
        &self,
        kind: PluginKind,
        t: &str,
        _: &serde_json::Value,
        _: bool,
    ) -> Result<Vec<occopus_model::plugin::FieldError>, occopus_model::plugin::NoPlugin> {
        Err(none_of(kind, t))
    }
    fn plugins(&self) -> Vec<occopus_model::plugin::PluginInfo> {
        Vec::new()
    }
}

fn none_of(kind: PluginKind, t: &str) -> occopus_model::plugin::NoPlugin {
    occopus_model::plugin::NoPlugin {
        kind,
        type_name: t.into(),
        known: Vec::new(),
    }
}

#[tokio::test]
async fn with_no_plugins_at_all_one_line_says_so_and_what_is_needed() {
    let env = Env::new();
    let engine = occopus_engine::Engine::new(
        Arc::new(NoPlugins),
        Arc::new(env.store.clone()),
        fast_options(),
    );
    let nodes: Vec<_> = (0..50).map(|i| node(&format!("n{i}"), 1, 1)).collect();
    let err = engine
        .build(
            &infra(nodes, &[]),
            Arc::new(NoCredentials),
            BuildOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "no plugin of the kinds this build needs is loaded (check --plugin-dir); it needs \
             resource-handler `fake` and health-checker `basic`"
        ),
        "{err}"
    );
    assert!(!err.contains("n49"), "no node list: {err}");
}

#[test]
fn engine_futures_can_be_spawned() {
    fn is_send<T: Send>(_: &T) {}
    fn is_shared<T: Send + Sync + Clone + 'static>() {}
    is_shared::<occopus_engine::Engine>();
    let env = Env::new();
    let desc = infra(vec![node("a", 1, 1)], &[]);
    let id = InfraId::new("x");
    is_send(&env.try_build(&desc, BuildOptions::default()));
    is_send(&env.destroy(&id));
    is_send(&env.engine.status(&id, Arc::new(NoCredentials)));
    is_send(&env.engine.plan(&desc, None));
}

/// A plugin's `poll_after_ms` hint replaces the engine's backoff: ten pending polls with
/// a 2 ms hint take milliseconds, where the default backoff (25 ms, doubling) would take
/// more than 25 s.
#[tokio::test]
async fn the_plugins_poll_hint_replaces_the_backoff() {
    let env = Env::with_options(occopus_engine::EngineOptions {
        event_capacity: 1 << 16,
        ..occopus_engine::EngineOptions::default()
    });
    let n = node("web", 1, 1);
    env.cloud.set(
        "web",
        Behaviour {
            pending_polls: 10,
            poll_after_ms: Some(2),
            ..Behaviour::default()
        },
    );
    let t = std::time::Instant::now();
    env.build(&infra(vec![n], &[])).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(env.cloud.calls_of("state", "web").len() >= 11);
}

#[tokio::test]
async fn dependents_are_announced_to_the_plugin_host_when_their_dependency_starts() {
    // Without staging (which would start the dependents instead of announcing them).
    let env = Env::with_options(occopus_engine::EngineOptions {
        stage: false,
        ..fast_options()
    });
    env.cloud.set(
        "r",
        Behaviour {
            create_latency: Duration::from_millis(50),
            ..Behaviour::default()
        },
    );
    // r <- a (3 instances), r <- b (2); c depends on both a and b.
    let desc = infra(
        vec![
            node("r", 1, 1),
            node("a", 3, 3),
            node("b", 2, 2),
            node("c", 1, 1),
        ],
        &[("a", "r"), ("b", "r"), ("c", "a"), ("c", "b")],
    );
    env.build(&desc).await;
    let prepared = env.host.prepared.lock().unwrap().clone();
    // Once r has started: the first wave's (r's) health check; then a's and b's five
    // creates; when the first of a and b starts: c's one. c is announced once; r
    // (nothing before it) never.
    assert_eq!(
        prepared,
        vec![
            (PluginKind::HealthChecker, "basic".to_string(), 1),
            (PluginKind::ResourceHandler, "fake".to_string(), 5),
            (PluginKind::ResourceHandler, "fake".to_string(), 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_task_that_panics_fails_its_node_and_is_rolled_back() {
    let env = Env::new();
    env.cloud.set(
        "p",
        Behaviour {
            state_panics: true,
            ..Behaviour::default()
        },
    );
    let desc = infra(vec![node("q", 2, 2), node("p", 1, 1)], &[]);
    let e = env
        .try_build(&desc, BuildOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.failures.len(), 1, "{e}");
    assert_eq!(e.failures[0].node.as_str(), "p");
    assert!(
        e.failures[0]
            .message
            .contains("the engine's task for this instance panicked: fake plugin bug in state"),
        "{}",
        e.failures[0].message
    );
    // p's resource was created before the panic: the rollback destroyed it with the rest.
    assert_eq!(env.cloud.calls_of("create", "p").len(), 1);
    assert!(env.cloud.alive().is_empty(), "{:?}", env.cloud.alive());
}

/// The engine over `store` (a [`HookedStore`] around the env's file store).
fn engine_over(env: &Env, store: HookedStore) -> (occopus_engine::Engine, Arc<HookedStore>) {
    let store = Arc::new(store);
    let engine = occopus_engine::Engine::new(env.host.clone(), store.clone(), fast_options());
    (engine, store)
}

#[tokio::test]
async fn later_intents_are_committed_while_the_first_wave_runs_and_before_they_start() {
    let env = Env::new();
    env.cloud.set(
        "a",
        Behaviour {
            create_latency: Duration::from_millis(30),
            ..Behaviour::default()
        },
    );
    // b's intent is committed only 300 ms after it was stored.
    let store = HookedStore::new(env.store.clone(), |records| {
        if has_intent_of(records, "b") {
            AppendHook::DelayAck(Duration::from_millis(300))
        } else {
            AppendHook::Pass
        }
    });
    let (engine, store) = engine_over(&env, store);
    let desc = infra(vec![node("a", 1, 1), node("b", 1, 1)], &[("b", "a")]);
    engine
        .build(&desc, Arc::new(NoCredentials), BuildOptions::default())
        .await
        .unwrap();
    let start = env.cloud.start.lock().unwrap().unwrap();
    let committed = store.delayed_acks.lock().unwrap()[0].duration_since(start);
    let a = &env.cloud.calls_of("create", "a")[0];
    let b = &env.cloud.calls_of("create", "b")[0];
    assert!(
        a.at < committed,
        "a (the first wave) started at {:?}, only after b's intent was committed at {committed:?}",
        a.at
    );
    assert!(
        b.at >= committed,
        "b started at {:?}, before its intent was committed at {committed:?}",
        b.at
    );
}
