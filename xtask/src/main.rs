//! Project tasks, run as `cargo xtask <task>`.
//!
//! Owns: dispatching to one module per task. Must not: hold task logic itself; a new task
//! is a new module plus one line in [`TASKS`] and one arm in `main`.

mod bench;
mod build_plugins;
mod demo;
mod test;
mod workspace;

use std::process::ExitCode;

/// Every task with a one-line summary, for `cargo xtask help`.
const TASKS: &[(&str, &str)] = &[
    (
        "demo [--destroy]",
        "build the plugins and occopus, deploy the default example (examples/default) and query it; --destroy removes it",
    ),
    (
        "test [-- <cargo test args>]",
        "the whole test suite: build plugins, start the test environment (scripts/testenv.sh), cargo test, stop it",
    ),
    (
        "bench [--quick] [--out FILE]",
        "benchmarks side by side: occopus at scale, critical-path efficiency, Terraform, plugin costs; writes docs/benchmarks.md",
    ),
    (
        "build-plugins [--fixtures] [--only <name>]...",
        "build plugin crates under plugins/ for wasm32-wasip2 into <target>/plugins (fixtures into <target>/plugins-fixtures)",
    ),
];

fn usage() -> String {
    let mut s = String::from("usage: cargo xtask <task> [options]\n\ntasks:\n");
    for (t, what) in TASKS {
        s.push_str(&format!("  {t}\n      {what}\n"));
    }
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "bench" => bench::run(rest),
        "build-plugins" => build_plugins::run(rest),
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "help" | "-h" | "--help" => {
            print!("{}", usage());
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown task `{other}`\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
