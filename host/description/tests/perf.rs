//! Size check: a generated description with 10,000 nodes and about 20,000 dependencies
//! (written as YAML aliases), whose templates read variables and other nodes' addresses,
//! loads in linear time. Prints the time; no timing assertion (machines differ). In
//! release mode it loads in well under a second.

use occopus_description::{LoadOptions, NodeDefSource, load};
use std::fmt::Write as _;
use std::time::Instant;

const NODES: usize = 10_000;
const TYPES: usize = 10;

fn description() -> String {
    let mut s = String::from(
        "infra_name: big\nuser_id: perf@example.com\nvariables:\n  message: hello\n  port: 80\nnodes:\n",
    );
    s.push_str("  - &n0\n    name: n0\n    type: root\n");
    for i in 1..NODES {
        let _ = write!(
            s,
            "  - &n{i}\n    name: n{i}\n    type: t{}\n    variables:\n      peer: n{}\n",
            i % TYPES,
            i / 2
        );
        if i % 7 == 0 {
            let _ = writeln!(s, "    scaling: {{min: 1, max: 3}}");
        }
    }
    s.push_str("dependencies:\n");
    for i in 1..NODES {
        let _ = writeln!(s, "  - [*n{i}, *n{}]", i - 1);
        if i >= 3 {
            let _ = writeln!(s, "  - connection: [*n{i}, *n{}]", i / 2);
        }
    }
    s
}

fn node_definitions() -> String {
    let mut s = String::from(
        "'node_def:root':\n  - resource: {type: docker, endpoint: e, origin: dockerhub, image: i, tag: t}\n",
    );
    for t in 0..TYPES {
        let _ = write!(
            s,
            "'node_def:t{t}':\n  - resource:\n      type: ec2\n      endpoint: https://ec2.example.com\n      regionname: r\n      image_id: ami-{t}\n      instance_type: t3.micro\n    contextualisation:\n      type: cloudinit\n      context_template: |\n        #cloud-config\n        runcmd:\n          - echo {{{{ variables.message }}}} {{{{ variables.port }}}}\n          - ping -c1 {{{{ getip(variables.peer) }}}}\n    health_check:\n      ports: [22]\n"
        );
    }
    s
}

#[test]
fn ten_thousand_nodes_load_in_linear_time() {
    let infra = description();
    let nodes = node_definitions();
    let start = Instant::now();
    let opts = LoadOptions::from_text("big.yaml", infra).with_nodes(NodeDefSource::Text {
        name: "nodes.yaml".into(),
        text: nodes,
        base_dir: None,
    });
    let loaded = load(&opts, None).unwrap_or_else(|d| panic!("{d}"));
    let took = start.elapsed();
    assert_eq!(loaded.infra.nodes.len(), NODES);
    assert_eq!(loaded.infra.edges.len(), 2 * NODES - 4);
    assert!(loaded.infra.edges.iter().all(|e| !e.implicit));
    assert!(loaded.warnings.is_empty(), "{}", loaded.warnings);
    println!(
        "loaded {NODES} nodes and {} edges in {took:?} ({} build)",
        loaded.infra.edges.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}
