//! Conformance with Occopus 1.10's own tutorials: every folder of the shared corpus
//! (`../shared/corpus/occopus` from the repository root) loads unchanged: its description,
//! its `nodes/node_definitions.yaml` and the default auth data. Where a tutorial fails by
//! design, the exact diagnostic is listed below with the reason.

use occopus_description::{Code, LoadOptions, Severity, load, parse_auth_data};
use occopus_graph::Dag;
use occopus_model::ResolvedInfra;
use occopus_model::plugin::PluginKind;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/occopus");
    assert!(
        p.join("INDEX.md").is_file(),
        "the Occopus tutorial corpus is missing: expected it at {} (the `shared/` folder next to the repository)",
        p.display()
    );
    p
}

/// Tutorials whose strict load fails by design: (folder, code of every error, why).
const STRICT_FAILURES: &[(&str, Code, &str)] = &[(
    "cqueue-cluster",
    Code::UndefinedName,
    // The worker's cloud-config writes `getip(master)` without quotes: `master` is an
    // undefined variable. Jinja2 rendered it as empty and Occopus's `getip` then returned
    // the first instance of *any* node, which happened to be the master. Strict mode
    // refuses it; lenient mode (`--jinja-undefined=lenient`) loads it with a warning.
    "getip(master) is unquoted",
)];

/// Warnings each tutorial is expected to produce (all others produce none).
const WARNINGS: &[(&str, &[Code])] = &[
    // No dependencies, but the slave's cloud-config calls getip('hadoop-master').
    ("autoscaling-hadoop", &[Code::ImplicitDependency]),
    // No dependencies, but the WordPress node's puppet attributes call
    // getip('puppet-solo-mysql').
    ("puppet-solo-wordpress", &[Code::ImplicitDependency]),
];

fn infra_file(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    found.sort();
    assert!(
        found.len() <= 1,
        "more than one description in {}",
        dir.display()
    );
    found.pop()
}

/// A fingerprint of every file under `dir`, to prove the test changes nothing.
fn fingerprint(dir: &Path, h: &mut DefaultHasher) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            fingerprint(&p, h);
        } else {
            p.hash(h);
            std::fs::read(&p).unwrap_or_default().hash(h);
        }
    }
}

fn implicit(infra: &ResolvedInfra) -> Vec<(String, String)> {
    infra
        .edges
        .iter()
        .filter(|e| e.implicit)
        .map(|e| (e.dependent.to_string(), e.dependee.to_string()))
        .collect()
}

fn levels(infra: &ResolvedInfra) -> Vec<Vec<String>> {
    let idx = |n: &str| {
        infra
            .nodes
            .iter()
            .position(|x| x.name.as_str() == n)
            .unwrap()
    };
    let mut dag = Dag::new(infra.nodes.len());
    for e in &infra.edges {
        dag.add_edge(idx(e.dependent.as_str()), idx(e.dependee.as_str()));
    }
    dag.levels()
        .unwrap()
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|i| infra.nodes[i].name.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_tutorial_loads_unchanged() {
    let root = corpus();
    let mut before = DefaultHasher::new();
    fingerprint(&root, &mut before);

    let auth_path = root.join("config-dot-occopus/auth_data.yaml");
    let auth = parse_auth_data(&auth_path).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(auth.len(), 6);
    let ec2 = serde_json::json!({"type": "ec2", "endpoint": "x"});
    assert!(
        auth.select(PluginKind::ResourceHandler, ec2.as_object().unwrap())
            .unwrap()
            .is_some()
    );

    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut loaded = 0;
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "config-dot-occopus" {
            // Only `~/.occopus` files: its auth data is parsed above.
            continue;
        }
        let infra = infra_file(dir).unwrap_or_else(|| panic!("no description in {name}"));
        let opts = LoadOptions::new(&infra).with_auth(auth_path.as_path());
        let expected_failure = STRICT_FAILURES.iter().find(|(d, _, _)| *d == name);
        let result = load(&opts, None);
        match (result, expected_failure) {
            (Ok(l), None) => {
                let want: &[Code] = WARNINGS
                    .iter()
                    .find(|(d, _)| *d == name)
                    .map_or(&[], |(_, w)| w);
                let got: Vec<Code> = l.warnings.iter().map(|d| d.code).collect();
                if got != want {
                    failures.push(format!("{name}: unexpected warnings\n{}", l.warnings));
                }
                assert!(!l.infra.nodes.is_empty());
                for n in &l.infra.nodes {
                    assert!(!n.implementations.is_empty(), "{name}: {}", n.name);
                }
                loaded += 1;
            }
            (Err(d), Some((_, code, _))) => {
                let codes: Vec<Code> = d
                    .iter()
                    .filter(|x| x.severity == Severity::Error)
                    .map(|x| x.code)
                    .collect();
                if codes.is_empty() || codes.iter().any(|c| c != code) {
                    failures.push(format!("{name}: expected only {code} errors\n{d}"));
                }
                match load(&opts.clone().lenient(true), None) {
                    Ok(l) => assert!(l.warnings.contains(*code), "{name}: {}", l.warnings),
                    Err(d) => failures.push(format!("{name}: fails in lenient mode too\n{d}")),
                }
                loaded += 1;
            }
            (Ok(_), Some(_)) => failures.push(format!("{name}: expected to fail in strict mode")),
            (Err(d), None) => failures.push(format!("{name}:\n{d}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(loaded, dirs.len() - 1);

    let mut after = DefaultHasher::new();
    fingerprint(&root, &mut after);
    assert_eq!(before.finish(), after.finish(), "the corpus was modified");
}

#[test]
fn tutorials_relying_on_list_order_get_implicit_edges() {
    let root = corpus();
    let l = load(
        &LoadOptions::new(root.join("autoscaling-hadoop/infra_as_hadoop.yaml")),
        None,
    )
    .unwrap();
    assert_eq!(
        implicit(&l.infra),
        vec![("hadoop-slave".to_string(), "hadoop-master".to_string())]
    );
    assert_eq!(
        levels(&l.infra),
        vec![vec!["hadoop-master"], vec!["hadoop-slave"]]
    );

    let l = load(
        &LoadOptions::new(root.join("puppet-solo-wordpress/infra-puppet-solo-wordpress.yaml")),
        None,
    )
    .unwrap();
    assert_eq!(
        implicit(&l.infra),
        vec![(
            "puppet-solo-wp".to_string(),
            "puppet-solo-mysql".to_string()
        )]
    );
}

#[test]
fn autoscaling_dataavenue_levels() {
    let root = corpus();
    let l = load(
        &LoadOptions::new(root.join("autoscaling-dataavenue/infra_as_dataavenue.yaml")),
        None,
    )
    .unwrap();
    assert!(implicit(&l.infra).is_empty());
    assert_eq!(
        levels(&l.infra),
        vec![vec!["db"], vec!["prometheus", "da"], vec!["lb"]]
    );
    let lb = l.infra.node("lb").unwrap();
    assert_eq!((lb.scaling.min, lb.scaling.max), (1, 5));
    // `getip(variables.consul_host)` resolves to `db`, on which `da` and `lb` depend.
    assert_eq!(l.infra.variables["consul_host"], "db");
}

#[test]
fn imported_cloud_configs_become_text() {
    let root = corpus();
    let l = load(
        &LoadOptions::new(root.join("chef-wordpress/infra-chef-wordpress.yaml")),
        None,
    )
    .unwrap();
    let db = l.infra.node("mysql-server").unwrap();
    let imp = &db.implementations[0];
    let occopus_model::Contextualisation::Cloudinit {
        context_template,
        attributes,
    } = &imp.contextualisation
    else {
        panic!("not cloudinit");
    };
    assert!(
        context_template.starts_with("#cloud-config\n"),
        "{context_template}"
    );
    assert!(
        context_template.contains("{{infra_id}}"),
        "{context_template}"
    );
    assert_eq!(
        attributes["mysql"]["server_root_password"],
        "{{ variables.mysql_root_password }}"
    );
    assert_eq!(
        imp.health_check.section["mysqldbs"][0]["user"],
        "{{ variables.mysql_dbuser_username }}"
    );
    let wp = l
        .infra
        .edges
        .iter()
        .find(|e| e.dependent.as_str() == "wordpress")
        .unwrap();
    assert_eq!(
        wp.mappings,
        vec![serde_json::json!({"attributes": ["fqdn", "wordpress.db.host"]})]
    );

    // `!text_import` keeps the text as written.
    let l = load(
        &LoadOptions::new(root.join("flowbster-autodock-vina/infra-autodock-vina.yaml")),
        None,
    )
    .unwrap();
    let text = std::fs::read_to_string(
        root.join("flowbster-autodock-vina/nodes/cloud_init_flowbster_node.yaml"),
    )
    .unwrap();
    let occopus_model::Contextualisation::Cloudinit {
        context_template, ..
    } = &l.infra.nodes[0].implementations[0].contextualisation
    else {
        panic!("not cloudinit");
    };
    assert_eq!(*context_template, text);
}
