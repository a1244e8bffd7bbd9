//! Crash safety: kill the engine at every plugin call of a build (or destroy), restart it
//! on the same state, and check that nothing is duplicated or leaked.
//!
//! "Killing" is what a dead process does to the engine: the fake plugin blocks forever
//! at call k (after doing its effect, the worst case) and the build future is dropped.

mod support;

use occopus_engine::{BuildOptions, DestroyOptions, NoCredentials};
use occopus_model::{InfraId, InstancePhase, ResolvedInfra};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;

fn three_nodes() -> ResolvedInfra {
    let mut a = node("a", 1, 1);
    a.implementations[0].config_management = Some(
        serde_json::from_value(serde_json::json!({"type": "fakecm", "endpoint": "http://chef"}))
            .unwrap(),
    );
    infra(
        vec![a, node("b", 1, 1), node("c", 1, 1)],
        &[("b", "a"), ("c", "b")],
    )
}

/// Run `fut` until the cloud hangs (then drop it: the "crash") or it finishes.
async fn run_until_hang<F: Future>(env: &Env, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep(Duration::from_millis(2)) => {
                if env.cloud.hung.load(Ordering::SeqCst) {
                    return None;
                }
            }
        }
    }
}

fn calls_of_a_clean_build() -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let env = Env::new();
        env.build(&three_nodes()).await;
        env.cloud.calls_total.load(Ordering::SeqCst)
    })
}

#[test]
fn a_build_killed_at_any_call_resumes_without_duplicates_or_leaks() {
    let total = calls_of_a_clean_build();
    assert!(total >= 15, "the build makes {total} plugin calls");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for k in 1..=total {
        rt.block_on(async {
            let env = Env::new();
            let id = InfraId::new(format!("crash-{k}"));
            let opts = BuildOptions {
                infra_id: Some(id.clone()),
                ..BuildOptions::default()
            };
            env.cloud.hang_at.store(k, Ordering::SeqCst);
            let first = run_until_hang(&env, env.try_build(&three_nodes(), opts.clone())).await;
            assert!(first.is_none(), "call {k}: the build should have hung");

            // A new process on the same state and the same cloud.
            env.cloud.hang_at.store(0, Ordering::SeqCst);
            let (_store, engine) = env.restarted(fast_options());
            let report = engine
                .build(&three_nodes(), Arc::new(NoCredentials), opts)
                .await
                .unwrap_or_else(|e| panic!("call {k}: resume failed: {e}"));
            let st = engine.recorded(&id).await.unwrap().unwrap();
            assert_eq!(st.instances.len(), 3, "call {k}");
            assert!(
                st.instances.iter().all(|i| i.phase == InstancePhase::Ready),
                "call {k}"
            );
            let alive = env.cloud.alive();
            assert_eq!(alive.len(), 3, "call {k}: {alive:?}");
            assert_eq!(
                env.cloud.made.load(Ordering::SeqCst),
                3,
                "call {k}: no second resource"
            );
            for i in &st.instances {
                assert!(
                    alive.contains(&(i.node_name.to_string(), i.node_id.to_string())),
                    "call {k}"
                );
            }
            assert!(report.plan.creates() >= 1 || report.plan.keeps() == 3);
            assert!(
                !env.cloud.calls_of("cm_create_infra", "-infra-").is_empty(),
                "call {k}: the config-manager environment was created"
            );
            assert!(
                st.marks
                    .values()
                    .any(|m| m["created"] == serde_json::json!(true)),
                "call {k}: and recorded as created: {:?}",
                st.marks
            );

            engine
                .destroy(&id, Arc::new(NoCredentials), DestroyOptions::default())
                .await
                .unwrap();
            assert!(
                env.cloud.alive().is_empty(),
                "call {k}: leaked {:?}",
                env.cloud.alive()
            );
            assert!(engine.list().await.unwrap().is_empty());
        });
    }
}

#[test]
fn a_destroy_killed_at_any_call_finishes_on_the_next_run() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Calls made by one destroy of the three nodes.
    let per_destroy = rt.block_on(async {
        let env = Env::new();
        let r = env.build(&three_nodes()).await;
        let before = env.cloud.calls_total.load(Ordering::SeqCst);
        env.destroy(&r.infra_id).await.unwrap();
        env.cloud.calls_total.load(Ordering::SeqCst) - before
    });
    assert!(per_destroy >= 4);
    for k in 1..=per_destroy {
        rt.block_on(async {
            let env = Env::new();
            let id = env.build(&three_nodes()).await.infra_id;
            let base = env.cloud.calls_total.load(Ordering::SeqCst);
            env.cloud.hang_at.store(base + k, Ordering::SeqCst);
            let first = run_until_hang(&env, env.destroy(&id)).await;
            assert!(first.is_none(), "destroy call {k}: should have hung");
            env.cloud.hang_at.store(0, Ordering::SeqCst);
            let (_store, engine) = env.restarted(fast_options());
            engine
                .destroy(&id, Arc::new(NoCredentials), DestroyOptions::default())
                .await
                .unwrap_or_else(|e| panic!("destroy call {k}: {e}"));
            assert!(env.cloud.alive().is_empty(), "destroy call {k}: leaked");
            assert!(engine.list().await.unwrap().is_empty());
        });
    }
}

/// A crash right after the cloud made `c`, then a resume with an edited description in
/// which `c` waits for a new node `d` that fails: `c` never starts again, but it exists in
/// the cloud, so the rollback must destroy it rather than forget it.
#[test]
fn a_resumed_instance_that_never_starts_again_is_rolled_back_not_forgotten() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first = infra(vec![node("a", 1, 1), node("c", 1, 1)], &[("c", "a")]);
        // The number of c's create call in a clean build of `first`.
        let probe = Env::new();
        probe.build(&first).await;
        let at = probe
            .cloud
            .calls()
            .iter()
            .position(|c| c.op == "create" && c.node == "c")
            .expect("c is created") as u64
            + 1;

        let env = Env::new();
        let id = InfraId::new("resume-edited");
        let opts = BuildOptions {
            infra_id: Some(id.clone()),
            ..BuildOptions::default()
        };
        env.cloud.hang_at.store(at, Ordering::SeqCst);
        let crashed = run_until_hang(&env, env.try_build(&first, opts.clone())).await;
        assert!(
            crashed.is_none(),
            "the build should have hung at c's create"
        );
        assert_eq!(env.cloud.alive().len(), 2, "a and c exist in the cloud");

        env.cloud.hang_at.store(0, Ordering::SeqCst);
        env.cloud.set(
            "d",
            Behaviour {
                resource_fails: Some("no capacity".into()),
                ..Behaviour::default()
            },
        );
        let edited = infra(
            vec![node("a", 1, 1), node("d", 1, 1), node("c", 1, 1)],
            &[("d", "a"), ("c", "d")],
        );
        let (_store, engine) = env.restarted(fast_options());
        let err = engine
            .build(&edited, Arc::new(NoCredentials), opts)
            .await
            .expect_err("d fails");
        assert!(err.to_string().contains("no capacity"), "{err}");
        assert!(
            !env.cloud
                .alive()
                .iter()
                .any(|(node, _)| node == "c" || node == "d"),
            "c and d are rolled back: {:?}",
            env.cloud.alive()
        );
        // Whatever is still recorded can be destroyed, and then nothing is left.
        engine
            .destroy(&id, Arc::new(NoCredentials), DestroyOptions::default())
            .await
            .unwrap();
        assert!(
            env.cloud.alive().is_empty(),
            "leaked {:?}",
            env.cloud.alive()
        );
    });
}
