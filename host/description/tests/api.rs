//! The public entry points: files, in-memory text (the REST service), node definitions
//! stored by `occopus import`, and the JSON shape of diagnostics.

use occopus_description::{
    Code, Input, LoadOptions, NodeDefSource, NodeDefs, Severity, load, parse_node_definitions,
    parse_node_definitions_str,
};
use std::path::Path;

const CASE: &str = "tests/ui/valid/full";

#[test]
fn stored_node_definitions_load_like_the_file() {
    let from_file = load(&LoadOptions::new(Path::new(CASE).join("infra.yaml")), None).unwrap();

    // What `occopus import` stores: imports inlined, serialisable.
    let parsed =
        parse_node_definitions(&Path::new(CASE).join("nodes/node_definitions.yaml"), None).unwrap();
    assert!(parsed.warnings.is_empty(), "{}", parsed.warnings);
    assert_eq!(
        parsed.defs.types().collect::<Vec<_>>(),
        ["db_node", "web_node"]
    );
    let stored: NodeDefs =
        serde_json::from_str(&serde_json::to_string(&parsed.defs).unwrap()).unwrap();
    assert_eq!(stored, parsed.defs);

    let text = std::fs::read_to_string(Path::new(CASE).join("infra.yaml")).unwrap();
    let from_store = load(
        &LoadOptions::from_text("posted.yaml", text).with_nodes(NodeDefSource::Stored(stored)),
        None,
    )
    .unwrap();
    assert_eq!(from_store.infra, from_file.infra);
}

#[test]
fn stored_definitions_report_without_file_positions() {
    let parsed =
        parse_node_definitions(&Path::new(CASE).join("nodes/node_definitions.yaml"), None).unwrap();
    let infra = "infra_name: x\nuser_id: u\nnodes:\n  - name: web\n    type: web_node\n  - name: db\n    type: db_nod\n";
    let err = load(
        &LoadOptions::from_text("posted.yaml", infra)
            .with_nodes(NodeDefSource::Stored(parsed.defs)),
        None,
    )
    .unwrap_err();
    // `db_nod` is a typo; `web` has no `variables.message` (read in three templates).
    assert!(err.contains(Code::MissingNodeDefinition), "{err}");
    let undefined: Vec<_> = err
        .iter()
        .filter(|d| d.code == Code::UndefinedName)
        .collect();
    assert_eq!(undefined.len(), 3, "{err}");
    assert!(
        undefined
            .iter()
            .all(|d| d.file.is_none() && d.line.is_none())
    );
    assert_eq!(
        undefined[1].path.as_deref(),
        Some("node_def:web_node[0].contextualisation.attributes.message")
    );
    let missing = err
        .iter()
        .find(|d| d.code == Code::MissingNodeDefinition)
        .unwrap();
    assert!(
        missing
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean `db_node`?")
    );
}

#[test]
fn in_memory_text_resolves_imports_against_its_directory() {
    let nodes =
        std::fs::read_to_string(Path::new(CASE).join("nodes/node_definitions.yaml")).unwrap();
    let parsed = parse_node_definitions_str(
        "posted-nodes.yaml",
        &nodes,
        Some(&Path::new(CASE).join("nodes")),
        None,
    )
    .unwrap();
    assert_eq!(parsed.defs.len(), 2);

    let err = parse_node_definitions_str("posted-nodes.yaml", &nodes, None, None).unwrap_err();
    assert!(err.iter().all(|d| d.code == Code::ImportUrl), "{err}");
    assert_eq!(err.len(), 2);

    let text = std::fs::read_to_string(Path::new(CASE).join("infra.yaml")).unwrap();
    let opts = LoadOptions {
        infra: Input::Text {
            name: "posted.yaml".into(),
            text: text.clone(),
            base_dir: Some(CASE.into()),
        },
        nodes: NodeDefSource::Beside,
        auth: None,
        lenient_templates: false,
    };
    assert_eq!(load(&opts, None).unwrap().infra.nodes.len(), 3);

    let err = load(&LoadOptions::from_text("posted.yaml", text), None).unwrap_err();
    assert!(err.contains(Code::FileUnreadable), "{err}");
}

#[test]
fn diagnostics_serialise_to_json() {
    let err = load(
        &LoadOptions::new("tests/ui/invalid/scaling/infra.yaml"),
        None,
    )
    .unwrap_err();
    let json = err.to_json();
    let first = &json[0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "bad-scaling");
    assert_eq!(first["file"], "tests/ui/invalid/scaling/infra.yaml");
    assert_eq!(first["line"], 7);
    assert_eq!(first["column"], 12);
    assert_eq!(first["path"], "nodes[0].scaling.min");
    assert!(first["hint"].is_string());
    let back: occopus_description::Diagnostics = serde_json::from_value(json).unwrap();
    assert_eq!(back.len(), err.len());
    assert_eq!(
        err.iter()
            .filter(|d| d.severity == Severity::Warning)
            .count(),
        2
    );
    assert_eq!(err.summary(), "2 errors, 2 warnings");
}

#[test]
fn missing_files_name_the_os_error() {
    let err = load(&LoadOptions::new("tests/ui/no-such-dir/infra.yaml"), None).unwrap_err();
    let msgs: Vec<&str> = err.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs[0].contains("cannot read `tests/ui/no-such-dir/infra.yaml`"),
        "{msgs:?}"
    );
    assert!(msgs[0].contains("os error 2"), "{msgs:?}");
}
