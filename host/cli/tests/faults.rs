//! Plugin faults inside a real build through the `occopus` binary: a plugin that panics,
//! one that never returns and one that allocates without end each fail only their own
//! node, with the plugin's name, the operation and the cause; the other nodes of the same
//! build become ready, and the node downstream of a fault is not attempted.

use occopus_tests::{Occopus, fixture_subset, plugin_subset};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// One build: two healthy `sim` nodes, the faulty node, and a node depending on it.
fn build_with(o: &Occopus, fixture_type: &str) -> (occopus_tests::Run, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nodes")).unwrap();
    std::fs::write(
        dir.path().join("infra.yaml"),
        "infra_name: faults\nuser_id: tester\nnodes:\n  - { name: steady-a, type: steady }\n  \
         - { name: steady-b, type: steady }\n  - &F { name: faulty, type: faulty }\n  \
         - &D { name: downstream, type: steady }\ndependencies:\n  - [*D, *F]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nodes/node_definitions.yaml"),
        format!(
            "'node_def:steady':\n  - resource: {{ type: sim, create_ms: 300 }}\n\
             'node_def:faulty':\n  - resource: {{ type: {fixture_type} }}\n"
        ),
    )
    .unwrap();
    let t = Instant::now();
    let r = o
        .run([
            Path::new("build"),
            &dir.path().join("infra.yaml"),
            Path::new("--keep-on-failure"),
        ])
        .expect_code(1);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(
        r.stderr
            .contains("Not attempted because a node they depend on failed: downstream"),
        "{}",
        r.stderr
    );
    // The healthy nodes of the same build were created and are ready.
    let id = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("building infrastructure "))
        .expect("the build names its infrastructure")
        .trim()
        .to_string();
    let status = o.run(["status", &id, "--output", "json"]).expect_code(3);
    let v: Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let state_of = |node: &str| -> Option<String> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node"] == node)
            .map(|i| i["status"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(state_of("steady-a").as_deref(), Some("ready"), "{v}");
    assert_eq!(state_of("steady-b").as_deref(), Some("ready"), "{v}");
    assert_eq!(state_of("downstream"), None, "never created: {v}");
    o.run(["destroy", &id]).ok();
    (r, id)
}

#[test]
fn faulty_plugins_fail_only_their_own_nodes_in_a_build() {
    let builtins = plugin_subset(&["sim"]);
    let fixtures = fixture_subset(&["trap", "loop", "membomb"]);
    let mut o = Occopus::with_plugin_dirs(vec![
        builtins.path().to_path_buf(),
        fixtures.path().to_path_buf(),
    ]);
    // Small budgets keep the test short; the defaults are 60 s and 128 MiB.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "plugins:\n  fixture-loop:\n    timeouts: { create: 1 }\n  fixture-membomb:\n    memory_mb: 32\n",
    )
    .unwrap();
    o.env
        .push(("OCCOPUS_CONFIG".into(), config.display().to_string()));

    let (r, _) = build_with(&o, "fixture-trap");
    assert!(
        r.stderr
            .contains("plugin `fixture-trap` failed during `create`")
            && r.stderr.contains("deliberate panic in create"),
        "the trap names the plugin and carries the panic message:\n{}",
        r.stderr
    );
    let (r, _) = build_with(&o, "fixture-loop");
    assert!(
        r.stderr.contains("fixture-loop") && r.stderr.contains("exceeded its time budget of 1 s"),
        "the endless loop is stopped by the time budget:\n{}",
        r.stderr
    );
    let (r, _) = build_with(&o, "fixture-membomb");
    assert!(
        r.stderr.contains("fixture-membomb") && r.stderr.contains("hit its memory cap of 32.0 MiB"),
        "the memory bomb hits the cap:\n{}",
        r.stderr
    );
}
