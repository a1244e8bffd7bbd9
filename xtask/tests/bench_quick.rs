//! `cargo xtask bench --quick` end to end: builds what it needs, runs every part on tiny
//! graphs (one run each) and produces the table on stdout and the Markdown report. Checks
//! the shape of the output only; timings are never asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the workspace root")
        .to_path_buf()
}

/// The target directory this test was built into (`<target>/<profile>/deps/<bin>`), so
/// the benchmark reuses the same builds.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .expect("current_exe")
                .ancestors()
                .nth(3)
                .expect("test binary under <target>/<profile>/deps")
                .to_path_buf()
        })
}

#[test]
fn quick_bench_prints_a_table_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("benchmarks.md");
    // Through `cargo xtask`, as a user runs it. Not `CARGO_BIN_EXE_occopus-xtask`: other
    // tests run `cargo xtask build-plugins`, which may relink that very file (with the
    // features of a single-package build) while this test starts it.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .arg("xtask")
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["bench", "--quick", "--out"])
        .arg(&report)
        .output()
        .expect("running the xtask binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench --quick failed:\n{stdout}\n{stderr}"
    );

    // The table on stdout: every shape at both sizes, each part present.
    assert!(stdout.contains("Targets (design brief §8)"), "{stdout}");
    assert!(stdout.contains("1. Engine at scale"), "{stdout}");
    let scale_rows = stdout
        .lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 3
                && ["chain", "fan-out", "layered"].contains(&w[0])
                && ["10", "30"].contains(&w[1])
                && w[2] == "1"
        })
        .count();
    // Section 1 has 6 rows (3 shapes × 2 sizes, 1 run); Terraform, if present, 6 more.
    assert!(scale_rows >= 6, "{scale_rows} rows:\n{stdout}");
    assert!(stdout.contains("2. Critical-path efficiency"), "{stdout}");
    assert!(
        stdout.contains("3. Side by side with Terraform"),
        "{stdout}"
    );
    assert!(stdout.contains("4. Plugin costs"), "{stdout}");

    // The Markdown report says what it is and holds the same figures as tables.
    let md = std::fs::read_to_string(&report).expect("the report was written");
    assert!(md.starts_with("# Benchmarks\n"), "{md}");
    assert!(md.contains("cargo xtask bench --quick"), "{md}");
    assert!(md.contains("core(s)"), "{md}");
    for shape in ["chain", "fan-out", "layered"] {
        for n in ["10", "30"] {
            assert!(
                md.contains(&format!("| {shape} | {n} | 1 | ")),
                "{shape} {n}:\n{md}"
            );
        }
        // Critical-path rows at 10 nodes: shape, nodes, depth, figures.
        assert!(md.contains(&format!("| {shape} | 10 | ")), "{md}");
    }
    assert!(md.contains("| promise | target | measured |"), "{md}");
    // Either Terraform ran or the report says why not.
    assert!(
        md.contains("terraform apply") || md.contains("Not measured"),
        "{md}"
    );
}
