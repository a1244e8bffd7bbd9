//! The behaviour every [`StateStore`] must show, as a reusable test suite. A store crate
//! runs it with a constructor of fresh, empty stores:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     occopus_state::conformance::run_all(|| MyStore::new_empty()).await;
//! }
//! ```
//!
//! Owns: store-agnostic assertions only (no files, no Redis).

use crate::{InfraMeta, LockHolder, Record, StateError, StateStore};
use occopus_model::{
    Addresses, InfraId, InstancePhase, InstanceRecord, NodeId, NodeName, NodeStatus, ResolvedInfra,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Metadata of a small infrastructure named `name`.
pub fn sample_meta(id: &str, name: &str, created_at_ms: u64) -> InfraMeta {
    InfraMeta {
        infra_id: InfraId::new(id),
        name: name.into(),
        created_at_ms,
        description_path: Some("infra.yaml".into()),
        infra: std::sync::Arc::new(ResolvedInfra {
            name: name.into(),
            user_id: None,
            variables: json!({}),
            nodes: Vec::new(),
            edges: Vec::new(),
        }),
    }
}

/// An instance record of node `node` in `phase`.
pub fn sample_record(node_id: &str, node: &str, phase: InstancePhase) -> InstanceRecord {
    InstanceRecord {
        node_id: NodeId::new(node_id),
        node_name: NodeName::new_unchecked(node),
        impl_index: 0,
        resource_type: "fake".into(),
        resource: json!({"type": "fake", "endpoint": "http://cloud"}),
        instance: (phase != InstancePhase::Creating).then(|| json!({"id": node_id})),
        addresses: Addresses {
            primary: Some("10.0.0.1".into()),
            ..Addresses::default()
        },
        phase,
        status: if phase == InstancePhase::Ready {
            NodeStatus::Ready
        } else {
            NodeStatus::Pending
        },
        message: None,
        created_at_ms: 1,
        ready_at_ms: None,
    }
}

/// Run every check against fresh stores made by `make`.
pub async fn run_all<S: StateStore + 'static>(make: impl Fn() -> S) {
    lifecycle(&make()).await;
    created_with_records(&make()).await;
    journal_replay(&make()).await;
    concurrent_appends(Arc::new(make())).await;
    locking(&make()).await;
    node_defs(&make()).await;
}

/// Create, load, list, update, remove.
pub async fn lifecycle<S: StateStore>(store: &S) {
    let id = InfraId::new("infra-a");
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
    let meta = sample_meta("infra-a", "alpha", 10);
    store.create_infra(&meta).await.unwrap();
    assert!(matches!(
        store.create_infra(&meta).await,
        Err(StateError::AlreadyExists(_))
    ));
    store
        .create_infra(&sample_meta("infra-b", "beta", 5))
        .await
        .unwrap();
    let listed = store.list().await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["beta", "alpha"], "oldest first");
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.meta.as_ref(), Some(&meta));
    assert!(loaded.instances.is_empty());

    let mut changed = meta.clone();
    changed.name = "alpha2".into();
    store.put_meta(&changed).await.unwrap();
    let loaded = store.load(&id).await.unwrap().unwrap();
    assert_eq!(loaded.meta.unwrap().name, "alpha2");
    assert!(matches!(
        store.put_meta(&sample_meta("nope", "x", 1)).await,
        Err(StateError::NotFound(_))
    ));

    assert!(store.remove(&id).await.unwrap());
    assert!(!store.remove(&id).await.unwrap());
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(store.list().await.unwrap().len(), 1);
    let e = store
        .append(
            &InfraId::new("nope"),
            &[Record::Dropped {
                node_id: NodeId::new("x"),
            }],
        )
        .await;
    assert!(e.is_err(), "appending to an unknown infrastructure fails");
}

/// An infrastructure created with its first records has them; later appends follow
/// them; a second create of the same id changes nothing.
pub async fn created_with_records<S: StateStore>(store: &S) {
    let id = InfraId::new("infra-w");
    let meta = sample_meta("infra-w", "with", 1);
    let first = [
        Record::Instance(sample_record("n1", "web", InstancePhase::Creating)),
        Record::Mark {
            key: "cm-infra:dummy:".into(),
            value: json!({"created": false}),
        },
    ];
    store.create_infra_with(&meta, &first).await.unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.meta.as_ref(), Some(&meta));
    assert_eq!(st.instances.len(), 1);
    assert_eq!(st.marks["cm-infra:dummy:"], json!({"created": false}));
    store
        .append(
            &id,
            &[Record::Instance(sample_record(
                "n1",
                "web",
                InstancePhase::Ready,
            ))],
        )
        .await
        .unwrap();
    let again = [Record::Instance(sample_record(
        "n2",
        "web",
        InstancePhase::Creating,
    ))];
    assert!(matches!(
        store.create_infra_with(&meta, &again).await,
        Err(StateError::AlreadyExists(_))
    ));
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 1, "the refused create wrote nothing");
    assert_eq!(st.instances[0].phase, InstancePhase::Ready);
}

/// Records replay in order: upserts, drops, marks.
pub async fn journal_replay<S: StateStore>(store: &S) {
    let id = InfraId::new("replay");
    store
        .create_infra(&sample_meta("replay", "r", 1))
        .await
        .unwrap();
    let ack1 = store.append(
        &id,
        &[
            Record::Instance(sample_record("n1", "db", InstancePhase::Creating)),
            Record::Instance(sample_record("n2", "web", InstancePhase::Creating)),
            Record::Instance(sample_record("n3", "web", InstancePhase::Creating)),
        ],
    );
    let ack2 = store.append(
        &id,
        &[
            Record::Instance(sample_record("n1", "db", InstancePhase::Ready)),
            Record::Dropped {
                node_id: NodeId::new("n2"),
            },
            Record::Mark {
                key: "cm:chef".into(),
                value: json!(true),
            },
            Record::Mark {
                key: "gone".into(),
                value: json!(1),
            },
            Record::Mark {
                key: "gone".into(),
                value: serde_json::Value::Null,
            },
        ],
    );
    // Awaiting the later ack covers the earlier one.
    ack2.await.unwrap();
    ack1.await.unwrap();
    let st = store.load(&id).await.unwrap().unwrap();
    let ids: Vec<_> = st.instances.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n3"]);
    assert_eq!(st.instances[0].phase, InstancePhase::Ready);
    assert_eq!(st.marks.len(), 1);
    assert_eq!(st.marks["cm:chef"], json!(true));
    store.append(&id, &[]).await.unwrap();
}

/// `tasks` concurrent tasks each append an intent (`creating`) and then an outcome
/// (`ready`) for their own instance, awaiting each ack as the engine does.
pub async fn append_from_tasks<S: StateStore + 'static>(store: Arc<S>, id: &InfraId, tasks: usize) {
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let (store, id) = (store.clone(), id.clone());
        handles.push(tokio::spawn(async move {
            let nid = format!("n{i}");
            for phase in [InstancePhase::Creating, InstancePhase::Ready] {
                store
                    .append(&id, &[Record::Instance(sample_record(&nid, "w", phase))])
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Many tasks append at once; every record is there afterwards.
pub async fn concurrent_appends<S: StateStore + 'static>(store: Arc<S>) {
    let id = InfraId::new("many");
    store
        .create_infra(&sample_meta("many", "m", 1))
        .await
        .unwrap();
    append_from_tasks(store.clone(), &id, 200).await;
    let st = store.load(&id).await.unwrap().unwrap();
    assert_eq!(st.instances.len(), 200);
    assert!(st.instances.iter().all(|r| r.phase == InstancePhase::Ready));
}

/// One writer at a time; the second is told who holds the lock.
pub async fn locking<S: StateStore>(store: &S) {
    let id = InfraId::new("locked");
    let holder = LockHolder {
        pid: 4242,
        command: "occopus build".into(),
        since_ms: 0,
    };
    let guard = store.lock(&id, &holder, Duration::ZERO).await.unwrap();
    assert_eq!(guard.holder().pid, 4242);
    let other = LockHolder::this_process("occopus destroy");
    let err = store
        .lock(&id, &other, Duration::from_millis(60))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "infrastructure locked is being changed by pid 4242 (`occopus build`) since 1970-01-01"
        ),
        "{msg}"
    );
    // A waiting writer gets the lock once it is released.
    let release = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(guard);
    };
    let (got, ()) = tokio::join!(store.lock(&id, &other, Duration::from_secs(5)), release);
    assert_eq!(got.unwrap().holder().command, "occopus destroy");
    // Locks of different infrastructures are independent.
    let _a = store
        .lock(&InfraId::new("l1"), &holder, Duration::ZERO)
        .await
        .unwrap();
    let _b = store
        .lock(&InfraId::new("l2"), &holder, Duration::ZERO)
        .await
        .unwrap();
}

/// Stored node definitions.
pub async fn node_defs<S: StateStore>(store: &S) {
    assert_eq!(store.get_node_defs("web").await.unwrap(), None);
    let v1 = json!([{"resource": {"type": "docker"}}]);
    let v2 = json!([{"resource": {"type": "ec2"}}, {"resource": {"type": "nova"}}]);
    store.put_node_defs("web", &v1).await.unwrap();
    store.put_node_defs("db/x", &v1).await.unwrap();
    store.put_node_defs("web", &v2).await.unwrap();
    assert_eq!(store.get_node_defs("web").await.unwrap(), Some(v2));
    assert_eq!(store.get_node_defs("db/x").await.unwrap(), Some(v1));
    assert_eq!(store.list_node_defs().await.unwrap(), ["db/x", "web"]);
}
