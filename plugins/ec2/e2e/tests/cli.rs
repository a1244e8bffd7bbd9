//! The `occopus` binary with the `ec2` plugin against the EC2 emulator: Occopus's own
//! `ec2-helloworld` and `ec2-ping` tutorials build and destroy, and a throttling answer
//! is retried by the engine.
//!
//! Each test copies a tutorial into a temporary directory and adapts only what a user
//! adapts for their cloud: the endpoint, region and image id placeholders, the security
//! group and subnet placeholders (replaced by ones made in the emulator, which refuses
//! unknown ids), the credentials (an auth-data file) and the health check (off: the
//! emulator's addresses are fake and must never be contacted). Everything else, the
//! infrastructure file and the cloud-init templates included, is used as published.

use occopus_ec2_e2e::*;
use occopus_tests::{Occopus, Run, corpus_dir, plugin_subset};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// `occopus` with only the `ec2` and `basic` plugins.
struct Cli {
    occ: Occopus,
    _plugins: tempfile::TempDir,
}

fn cli() -> Cli {
    let plugins = plugin_subset(&["ec2", "basic"]);
    Cli {
        occ: Occopus::with_plugin_dirs(vec![plugins.path().to_path_buf()]),
        _plugins: plugins,
    }
}

/// An adapted copy of a corpus tutorial.
struct Tutorial {
    dir: tempfile::TempDir,
    infra: PathBuf,
}

impl Tutorial {
    fn auth(&self) -> PathBuf {
        self.dir.path().join("auth_data.yaml")
    }
}

async fn adapt(emu: &Emulator, name: &str, infra_file: &str, endpoint: &str) -> Tutorial {
    let src = corpus_dir()
        .expect("the Occopus tutorial corpus (../shared/corpus/occopus) is missing")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    let (sg1, sg2, subnet) = (
        emu.security_group().await,
        emu.security_group().await,
        emu.default_subnet().await,
    );
    for entry in std::fs::read_dir(src.join("nodes")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path
            .file_name()
            .is_some_and(|n| n == "node_definitions.yaml")
        {
            for placeholder in [
                "replace_with_endpoint_of_ec2_interface_of_your_cloud",
                "replace_with_regionname_of_your_ec2_interface",
                "replace_with_id_of_your_image_on_your_target_cloud",
                "replace_with_security_group_id1_on_your_target_cloud",
                "replace_with_security_group_id2_on_your_target_cloud",
                "replace_with_subnet_id_on_your_target_cloud",
            ] {
                assert!(
                    text.contains(placeholder),
                    "{name}: {placeholder} not found; the tutorial changed"
                );
            }
            text = text
                .replace(
                    "replace_with_endpoint_of_ec2_interface_of_your_cloud",
                    endpoint,
                )
                .replace("replace_with_regionname_of_your_ec2_interface", &emu.region)
                .replace(
                    "replace_with_id_of_your_image_on_your_target_cloud",
                    "ami-12345678",
                )
                .replace("replace_with_security_group_id1_on_your_target_cloud", &sg1)
                .replace("replace_with_security_group_id2_on_your_target_cloud", &sg2)
                .replace("replace_with_subnet_id_on_your_target_cloud", &subnet)
                .replace(
                    "    contextualisation:\n",
                    "    health_check:\n      ping: false\n    contextualisation:\n",
                );
        }
        std::fs::write(
            dir.path().join("nodes").join(path.file_name().unwrap()),
            text,
        )
        .unwrap();
    }
    let infra = dir.path().join(infra_file);
    std::fs::copy(src.join(infra_file), &infra).unwrap();
    std::fs::write(
        dir.path().join("auth_data.yaml"),
        format!(
            "resource:\n  - type: ec2\n    auth_data:\n      accesskey: {}\n      secretkey: {}\n",
            emu.access_key, emu.secret_key
        ),
    )
    .unwrap();
    Tutorial { dir, infra }
}

fn build(o: &Occopus, t: &Tutorial) -> (Run, String) {
    let r = o
        .run([
            Path::new("build"),
            &t.infra,
            Path::new("--auth-data"),
            &t.auth(),
        ])
        .ok();
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 36, "build prints the infrastructure id: {r:?}");
    (r, id)
}

/// Build in a blocking thread (the test's runtime keeps serving the proxy meanwhile).
async fn build_blocking(o: Cli, t: Tutorial) -> (Cli, Tutorial, Run, String) {
    tokio::task::spawn_blocking(move || {
        let (r, id) = build(&o.occ, &t);
        (o, t, r, id)
    })
    .await
    .unwrap()
}

/// `occopus destroy <id>` (with the same auth data: credentials are never stored).
async fn destroy(o: Cli, t: &Tutorial, id: &str) {
    let (auth, id) = (t.auth(), id.to_string());
    let r = tokio::task::spawn_blocking(move || {
        o.occ
            .run([
                Path::new("destroy"),
                Path::new(&id),
                Path::new("--auth-data"),
                &auth,
            ])
            .ok()
    })
    .await
    .unwrap();
    assert!(r.stderr.contains("destroyed"), "{}", r.stderr);
}

async fn assert_all_gone(emu: &Emulator, infra_id: &str, expected: usize) {
    let all = emu.instances_tagged("occopus:infra-id", infra_id).await;
    assert_eq!(all.len(), expected, "{all:?}");
    for i in all {
        assert!(
            matches!(i.state.as_str(), "shutting-down" | "terminated"),
            "{i:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ec2_helloworld_tutorial_builds_and_destroys() {
    let Some(emu) = emulator() else { return };
    let t = adapt(
        &emu,
        "ec2-helloworld",
        "infra-ec2-helloworld.yaml",
        &emu.endpoint,
    )
    .await;
    let (o, t, r, id) = build_blocking(cli(), t).await;
    assert!(r.stderr.contains("ready"), "{}", r.stderr);

    let all = emu.instances_tagged("occopus:infra-id", &id).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let vm = &all[0];
    assert_eq!(vm.tag("occopus:node-name"), Some("helloworld"));
    assert!(
        vm.tag("Name")
            .is_some_and(|n| n.starts_with("occopus-ec2-helloworld-inf-")),
        "{vm:?}"
    );
    let ud = emu.user_data(&vm.id).await.expect("user data");
    assert!(ud.starts_with("#cloud-config"), "{ud}");
    assert!(
        ud.contains("Hello World! I have been created by Occopus"),
        "{ud}"
    );
    assert!(ud.contains("/tmp/helloworld.txt"), "{ud}");

    let status = o
        .occ
        .run([
            Path::new("status"),
            Path::new(&id),
            Path::new("--output"),
            Path::new("json"),
            Path::new("--auth-data"),
            &t.auth(),
        ])
        .ok();
    assert!(
        status.stdout.contains(&vm.dns_name),
        "getip is the public DNS name: {}",
        status.stdout
    );

    destroy(o, &t, &id).await;
    assert_all_gone(&emu, &id, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ec2_ping_tutorial_builds_with_the_receivers_address_in_the_senders_cloud_init() {
    let Some(emu) = emulator() else { return };
    let t = adapt(&emu, "ec2-ping", "infra-ec2-ping.yaml", &emu.endpoint).await;
    let (o, t, _r, id) = build_blocking(cli(), t).await;

    let all = emu.instances_tagged("occopus:infra-id", &id).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let by_name = |n: &str| {
        all.iter()
            .find(|i| i.tag("occopus:node-name") == Some(n))
            .unwrap_or_else(|| panic!("no {n}: {all:?}"))
    };
    let (receiver, sender) = (by_name("ping-receiver"), by_name("ping-sender"));
    let ud = emu.user_data(&sender.id).await.expect("sender user data");
    assert!(
        ud.contains(&format!("ping {} -c 5", receiver.dns_name)),
        "getip('ping-receiver') is the receiver's public DNS name ({}): {ud}",
        receiver.dns_name
    );
    let ud = emu
        .user_data(&receiver.id)
        .await
        .expect("receiver user data");
    assert!(
        ud.contains("I am the receiver node created by Occopus"),
        "{ud}"
    );

    destroy(o, &t, &id).await;
    assert_all_gone(&emu, &id, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_create_is_retried_by_the_engine_and_the_build_succeeds() {
    let Some(emu) = emulator() else { return };
    let proxy = ThrottleProxy::start(loopback_addr(&emu.endpoint), 1).await;
    let t = adapt(
        &emu,
        "ec2-helloworld",
        "infra-ec2-helloworld.yaml",
        &proxy.endpoint(),
    )
    .await;
    let (o, t, _r, id) = build_blocking(cli(), t).await;
    assert_eq!(
        proxy.throttled.load(Ordering::SeqCst),
        1,
        "the first request was throttled"
    );
    let all = emu.instances_tagged("occopus:infra-id", &id).await;
    assert_eq!(
        all.len(),
        1,
        "exactly one instance despite the retry: {all:?}"
    );

    destroy(o, &t, &id).await;
    assert_all_gone(&emu, &id, 1).await;
}

#[test]
fn the_multi_cloud_example_validates_unchanged() {
    if emulator().is_none() {
        return;
    }
    let o = cli();
    let dir = occopus_tests::workspace_root().join("examples/multi-cloud");
    for f in ["infra-multi-cloud.yaml", "infra-local-only.yaml"] {
        let r = o.occ.run([Path::new("validate"), &dir.join(f)]).ok();
        assert!(r.stdout.contains("is valid"), "{f}: {}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_multi_cloud_example_puts_one_node_type_on_ec2_and_on_this_machine() {
    let Some(emu) = emulator() else { return };
    let src = occopus_tests::workspace_root().join("examples/multi-cloud");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    let sg = emu.security_group().await;
    let nodes = std::fs::read_to_string(src.join("nodes/node_definitions.yaml")).unwrap();
    let ec2_health = "    health_check:\n      ports: [8080]\n      timeout: 900\n";
    assert!(
        nodes.contains(ec2_health),
        "the example's EC2 health check changed"
    );
    let nodes = nodes
        .replace(
            "replace_with_endpoint_of_ec2_interface_of_your_cloud",
            &emu.endpoint,
        )
        .replace("replace_with_regionname_of_your_ec2_interface", &emu.region)
        .replace(
            "replace_with_id_of_your_image_on_your_target_cloud",
            "ami-12345678",
        )
        .replace("replace_with_security_group_id_on_your_target_cloud", &sg)
        .replace(ec2_health, "    health_check:\n      ping: false\n");
    std::fs::write(dir.path().join("nodes/node_definitions.yaml"), nodes).unwrap();
    let infra = dir.path().join("infra-multi-cloud.yaml");
    std::fs::copy(src.join("infra-multi-cloud.yaml"), &infra).unwrap();
    let auth = std::fs::read_to_string(src.join("auth_data.yaml"))
        .unwrap()
        .replace("replace_with_your_access_key", &emu.access_key)
        .replace("replace_with_your_secret_key", &emu.secret_key);
    std::fs::write(dir.path().join("auth_data.yaml"), auth).unwrap();
    let t = Tutorial { dir, infra };

    let plugins = plugin_subset(&["ec2", "local", "basic"]);
    let o = Cli {
        occ: Occopus::with_plugin_dirs(vec![plugins.path().to_path_buf()]),
        _plugins: plugins,
    };
    let (o, t, _r, id) = build_blocking(o, t).await;

    let all = emu.instances_tagged("occopus:infra-id", &id).await;
    assert_eq!(all.len(), 1, "only web-cloud runs on EC2: {all:?}");
    assert_eq!(all[0].tag("occopus:node-name"), Some("web-cloud"));
    assert_eq!(all[0].tag("example"), Some("multi-cloud"));
    let ud = emu.user_data(&all[0].id).await.expect("user data");
    assert!(
        ud.contains("Hello from web-cloud") && ud.contains("a virtual machine on EC2"),
        "{ud}"
    );

    let status = o
        .occ
        .run([
            Path::new("status"),
            Path::new(&id),
            Path::new("--output"),
            Path::new("json"),
            Path::new("--auth-data"),
            &t.auth(),
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let local = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node"] == "web-local")
        .unwrap_or_else(|| panic!("{v}"));
    let addr = local["addresses"]["primary"].as_str().unwrap().to_string();
    assert!(
        addr.starts_with("127."),
        "the local implementation runs here: {addr}"
    );
    let page = reqwest::get(format!("http://{addr}:8080/index.html"))
        .await
        .expect("the local node serves")
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Hello from web-local") && page.contains("a process on this machine"),
        "{page}"
    );

    destroy(o, &t, &id).await;
    assert_all_gone(&emu, &id, 1).await;
}

/// A dependency chain `db <- app <- web` on EC2: `occopus build` is killed (SIGKILL, as a
/// crash) right after its first RunInstances, and `build -i ID` finishes the job with
/// exactly one instance per node, each dependent's cloud-init carrying its dependee's
/// private address.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_killed_after_run_instances_resumes_with_one_instance_per_node() {
    use std::io::BufRead;
    let Some(emu) = emulator() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
    let infra = dir.path().join("infra.yaml");
    std::fs::write(
        &infra,
        "infra_name: ec2-chain\nuser_id: tester\nnodes:\n  - &DB { name: db, type: db_vm }\n  \
         - &APP { name: app, type: app_vm }\n  - &WEB { name: web, type: web_vm }\n\
         dependencies:\n  - [*APP, *DB]\n  - [*WEB, *APP]\n",
    )
    .unwrap();
    // One node type per node: each template reads only its own dependee's address.
    let def = |ty: &str, upstream: &str| {
        format!(
            "'node_def:{ty}':\n  - resource:\n      type: ec2\n      endpoint: {}\n      \
             regionname: {}\n      image_id: ami-12345678\n      instance_type: t2.micro\n      \
             tags: {{ suite: chain }}\n    contextualisation:\n      type: cloudinit\n      \
             context_template: |\n        #cloud-config\n        runcmd:\n          \
             - echo \"{{{{ name }}}} upstream={upstream}\"\n    health_check:\n      ping: false\n",
            emu.endpoint, emu.region
        )
    };
    std::fs::write(
        dir.path().join("nodes/node_definitions.yaml"),
        [
            def("db_vm", "none"),
            def("app_vm", "{{ getprivip('db') }}"),
            def("web_vm", "{{ getprivip('app') }}"),
        ]
        .concat(),
    )
    .unwrap();
    let auth = dir.path().join("auth_data.yaml");
    std::fs::write(
        &auth,
        format!(
            "resource:\n  - type: ec2\n    auth_data:\n      accesskey: {}\n      secretkey: {}\n",
            emu.access_key, emu.secret_key
        ),
    )
    .unwrap();
    let o = cli();

    // The first build, killed as soon as the emulator holds its first instance.
    let mut child = o
        .occ
        .command()
        .arg("build")
        .arg(&infra)
        .arg("--auth-data")
        .arg(&auth)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let id = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "build announces its infrastructure id ({e}); it printed:\n{}",
                    seen.join("\n")
                )
            });
        if let Some(id) = line.strip_prefix("building infrastructure ") {
            break id.trim().to_string();
        }
        seen.push(line);
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let at_kill = loop {
        let seen = emu.instances_tagged("occopus:infra-id", &id).await;
        if !seen.is_empty() {
            break seen;
        }
        assert!(std::time::Instant::now() < deadline, "no RunInstances");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "the build finished before it could be killed"
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert!(at_kill.len() < 3, "killed mid-way: {at_kill:?}");

    // A new process resumes the same infrastructure.
    let (occ, infra2, auth2, id2) = (o, infra.clone(), auth.clone(), id.clone());
    let (o, r) = tokio::task::spawn_blocking(move || {
        let r = occ.occ.run([
            Path::new("build"),
            &infra2,
            Path::new("-i"),
            Path::new(&id2),
            Path::new("--auth-data"),
            &auth2,
        ]);
        (occ, r)
    })
    .await
    .unwrap();
    let r = r.ok();
    assert_eq!(r.stdout.trim(), id, "{}", r.stderr);

    let all = emu.instances_tagged("occopus:infra-id", &id).await;
    let mut names: Vec<&str> = all
        .iter()
        .map(|i| i.tag("occopus:node-name").unwrap_or("?"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["app", "db", "web"],
        "one instance per node: {all:?}"
    );
    for i in &all {
        assert_eq!(i.state, "running", "{i:?}");
        assert_eq!(i.tag("suite"), Some("chain"), "{i:?}");
        assert_eq!(
            i.tag("occopus:node-id").map(str::len),
            Some(36),
            "tagged with its node id: {i:?}"
        );
    }
    let by = |n: &str| {
        all.iter()
            .find(|i| i.tag("occopus:node-name") == Some(n))
            .unwrap()
    };
    let app_ud = emu.user_data(&by("app").id).await.expect("user data");
    assert!(
        app_ud.starts_with("#cloud-config")
            && app_ud.contains(&format!("app upstream={}", by("db").private_ip)),
        "{app_ud}"
    );
    let web_ud = emu.user_data(&by("web").id).await.expect("user data");
    assert!(
        web_ud.contains(&format!("web upstream={}", by("app").private_ip)),
        "{web_ud}"
    );

    let t = Tutorial {
        dir,
        infra: infra.clone(),
    };
    destroy(o, &t, &id).await;
    assert_all_gone(&emu, &id, 3).await;
}
