//! Benchmark (ignored; run on demand): the same N-container DAG with health gating
//! deployed by `docker-compose` (`depends_on` with `condition: service_healthy`) and by
//! `occopus build`, then torn down by `docker-compose down -v` and `occopus destroy`.
//! Prints the medians and the ratio; numbers go into `docs/docker-backend.md`.
//!
//! ```sh
//! cargo test -p occopus-docker-e2e --test bench_compose -- --ignored --nocapture
//! OCCOPUS_DOCKER_BENCH_N=20 OCCOPUS_DOCKER_BENCH_RUNS=5 cargo test ... (same)
//! ```
//!
//! Needs `docker-compose` (Debian package `docker-compose`) on the PATH.

mod common;

use common::*;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Parent of node `i` in the DAG: a binary tree rooted at node 0.
fn parent(i: usize) -> Option<usize> {
    (i > 0).then(|| (i - 1) / 2)
}

fn compose_file(n: usize) -> String {
    let mut s = String::from("version: \"2.4\"\nservices:\n");
    for i in 0..n {
        let _ = write!(
            s,
            "  s{i}:\n    image: occopus-example/tiers:1\n    command: [\"sh\", \"/srv/store.sh\"]\n    environment: [\"STORE_VALUE=s{i}\"]\n    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8000/value\"]\n      interval: 1s\n      timeout: 2s\n      retries: 30\n"
        );
        if let Some(p) = parent(i) {
            let _ = write!(
                s,
                "    depends_on:\n      s{p}:\n        condition: service_healthy\n"
            );
        }
    }
    s
}

fn occopus_files(n: usize, ep: &str) -> (String, String) {
    let mut infra = String::from("infra_name: bench\nuser_id: bench@example.com\nnodes:\n");
    for i in 0..n {
        let _ = write!(infra, "  - &N{i}\n    name: s{i}\n    type: bench_node\n");
    }
    infra.push_str("dependencies:\n");
    for i in 1..n {
        let _ = writeln!(infra, "  - [ *N{i}, *N{} ]", parent(i).unwrap());
    }
    let nodes = format!(
        "'node_def:bench_node':\n  - resource:\n      type: docker\n      endpoint: {ep}\n      origin: local\n      image: occopus-example/tiers\n      tag: '1'\n    contextualisation:\n      type: docker\n      env: [\"STORE_VALUE={{{{ name }}}}\"]\n      command: \"sh /srv/store.sh\"\n    health_check:\n      ping: false\n      ports: [8000]\n"
    );
    (infra, nodes)
}

fn timed(what: &str, cmd: &mut Command) -> (Duration, String) {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (d, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn compose_vs_occopus_health_gated_dag() {
    let ep = engine_or_skip!();
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        panic!("docker-compose is not installed (Debian: apt-get install docker-compose)");
    }
    let n = env_num("OCCOPUS_DOCKER_BENCH_N", 10);
    let runs = env_num("OCCOPUS_DOCKER_BENCH_RUNS", 3);
    let api = Api::new(&ep);
    build_example_image(&api).await;
    let bin = occopus_bin();
    let work = tempfile::tempdir().unwrap();
    let compose = work.path().join("docker-compose.yml");
    std::fs::write(&compose, compose_file(n)).unwrap();
    let (infra, nodes) = occopus_files(n, &ep);
    std::fs::create_dir_all(work.path().join("nodes")).unwrap();
    std::fs::write(work.path().join("infra.yaml"), infra).unwrap();
    std::fs::write(work.path().join("nodes/node_definitions.yaml"), nodes).unwrap();
    let state = work.path().join("state");

    let (mut c_up, mut c_down, mut o_up, mut o_down) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let project = format!("occobench{}x{r}", std::process::id());
        let dc = |args: &[&str]| {
            let mut c = Command::new("docker-compose");
            c.env("DOCKER_HOST", &ep)
                .args(["-p", &project, "-f", compose.to_str().unwrap()])
                .args(args);
            c
        };
        c_up.push(timed("docker-compose up", &mut dc(&["up", "-d"])).0);
        c_down.push(timed("docker-compose down", &mut dc(&["down", "-v"])).0);

        let (d, out) = timed(
            "occopus build",
            Command::new(&bin).env("OCCOPUS_STATE_DIR", &state).args([
                "-q",
                "build",
                work.path().join("infra.yaml").to_str().unwrap(),
            ]),
        );
        o_up.push(d);
        let id = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap()
            .trim()
            .to_string();
        let _purge = Purge {
            api: api.clone(),
            infra: id.clone(),
            images: vec![],
        };
        o_down.push(
            timed(
                "occopus destroy",
                Command::new(&bin)
                    .env("OCCOPUS_STATE_DIR", &state)
                    .args(["-q", "destroy", &id]),
            )
            .0,
        );
        assert!(
            api.containers_labelled("occopus.infra-id", &id)
                .await
                .is_empty()
        );
    }
    let (cu, cd, ou, od) = (median(c_up), median(c_down), median(o_up), median(o_down));
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!("\nhealth-gated DAG of {n} containers (binary tree), median of {runs} runs");
    println!("| step | docker-compose | occopus | occopus / compose |");
    println!("|---|---|---|---|");
    println!(
        "| up / build | {} | {} | {:.2} |",
        s(cu),
        s(ou),
        ou.as_secs_f64() / cu.as_secs_f64()
    );
    println!(
        "| down / destroy | {} | {} | {:.2} |",
        s(cd),
        s(od),
        od.as_secs_f64() / cd.as_secs_f64()
    );
}
