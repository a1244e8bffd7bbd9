//! Credentials never show up in what this crate prints or serialises: `Debug`, `Display`,
//! JSON of results, diagnostics and errors, for valid and broken auth data alike.

use occopus_description::{
    Diagnostics, Input, LoadOptions, NodeDefSource, load, parse_auth_data_str,
};
use occopus_model::plugin::PluginKind;
use std::path::PathBuf;

const SECRETS: &[&str] = &[
    "AKIA-S3CR3T-A",
    "s3cr3t-password-B",
    "S3CR3T-PEM-C",
    "s3cr3t-D",
];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks `{s}`:\n{text}");
    }
}

fn check_diags(what: &str, d: &Diagnostics) {
    assert_clean(what, &d.to_string());
    assert_clean(what, &format!("{d:?}"));
    assert_clean(what, &d.to_json().to_string());
}

const NODES: &str = "
'node_def:web':
  - resource:
      type: ec2
      endpoint: https://ec2.example.com
      regionname: r
      image_id: ami-1
      instance_type: t3.micro
    config_management:
      type: chef
      endpoint: https://chef.example.com
      run_list: ['recipe[web]']
";

const INFRA: &str = "infra_name: s\nuser_id: u@example.com\nnodes:\n  - name: web\n    type: web\n";

/// A directory holding `key.pem`, one per test (tests run concurrently).
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "occopus-description-secrets-{}-{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("key.pem"),
        "-----BEGIN KEY-----\nS3CR3T-PEM-C\n-----END KEY-----\n",
    )
    .unwrap();
    d
}

fn opts(auth: &str, base: &std::path::Path) -> LoadOptions {
    LoadOptions::from_text("infra.yaml", INFRA)
        .with_nodes(NodeDefSource::Text {
            name: "nodes.yaml".into(),
            text: NODES.into(),
            base_dir: None,
        })
        .with_auth(Input::Text {
            name: "auth_data.yaml".into(),
            text: auth.into(),
            base_dir: Some(base.to_path_buf()),
        })
}

#[test]
fn valid_auth_data_is_never_printed() {
    let d = dir("valid");
    let auth = "
resource:
  - type: ec2
    auth_data: {accesskey: AKIA-S3CR3T-A, secretkey: s3cr3t-password-B}
config_management:
  - type: chef
    auth_data:
      client_name: me
      client_key: !text_import {url: file://key.pem}
";
    let o = opts(auth, &d);
    assert_clean("LoadOptions", &format!("{o:?}"));
    let loaded = load(&o, None).unwrap_or_else(|e| panic!("{e}"));
    assert_clean("Loaded", &format!("{loaded:?}"));
    assert_clean(
        "ResolvedInfra JSON",
        &serde_json::to_string(&*loaded.infra).unwrap(),
    );
    check_diags("warnings", &loaded.warnings);

    let imp = &loaded.infra.nodes[0].implementations[0];
    let cred = loaded
        .auth
        .select(PluginKind::ResourceHandler, &imp.resource)
        .unwrap()
        .unwrap();
    assert_eq!(cred.expose()["accesskey"], "AKIA-S3CR3T-A");
    assert_clean(
        "Secret",
        &format!("{cred:?} {cred} {}", serde_json::to_string(&cred).unwrap()),
    );
    let cm = imp.config_management.as_ref().unwrap();
    let key = loaded
        .auth
        .select(PluginKind::ConfigManager, cm)
        .unwrap()
        .unwrap();
    assert!(
        key.expose()["client_key"]
            .as_str()
            .unwrap()
            .contains("S3CR3T-PEM-C")
    );
    for item in loaded.auth.items() {
        assert_clean("AuthItem", &format!("{item:?}"));
    }
}

#[test]
fn ambiguous_credentials_name_entries_not_secrets() {
    let d = dir("ambiguous");
    let auth = "
resource:
  - type: ec2
    auth_data: {accesskey: AKIA-S3CR3T-A}
  - type: ec2
    regionname: r
    auth_data: {secretkey: s3cr3t-password-B}
";
    let err = load(&opts(auth, &d), None).unwrap_err();
    check_diags("ambiguous load", &err);
    assert!(err.to_string().contains("auth_data.yaml:3"), "{err}");

    let parsed = parse_auth_data_str("auth_data.yaml", auth, None).unwrap();
    let section = serde_json::json!({"type": "ec2", "regionname": "r"});
    let e = parsed
        .select(PluginKind::ResourceHandler, section.as_object().unwrap())
        .unwrap_err();
    assert_clean("AuthError", &format!("{e} {e:?}"));
    assert_eq!(e.locations, vec!["auth_data.yaml:3", "auth_data.yaml:5"]);
}

#[test]
fn broken_auth_data_is_reported_without_its_values() {
    let cases = [
        // A syntax error on a line that holds a secret: no snippet.
        "resource:\n  - type: ec2\n    auth_data: {secretkey: \"s3cr3t-D}\n",
        // A bad core tag on a secret.
        "resource:\n  - type: ec2\n    auth_data: {secretkey: !!int s3cr3t-D}\n",
        // An import written as a scalar.
        "resource:\n  - type: ec2\n    auth_data: {key: !text_import s3cr3t-D}\n",
        // Credentials outside `auth_data`.
        "resource:\n  - type: ec2\n    secretkey: s3cr3t-D\n",
        // Wrong shapes.
        "resource: {secretkey: s3cr3t-D}\n",
        "resource:\n  - s3cr3t-D\n",
        // A missing import, a duplicate key and an unknown tag.
        "resource:\n  - type: ec2\n    auth_data:\n      k: !text_import {url: file://missing.pem}\n      k: s3cr3t-D\n      j: !secret s3cr3t-D\n",
    ];
    let base = dir("broken");
    for (i, text) in cases.iter().enumerate() {
        let d = parse_auth_data_str("auth_data.yaml", text, Some(&base)).unwrap_err();
        assert!(!d.is_empty(), "case {i}");
        check_diags(&format!("case {i}"), &d);
        let err = load(&opts(text, &base), None).unwrap_err();
        check_diags(&format!("case {i} (load)"), &err);
    }
}
