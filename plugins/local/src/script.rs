//! The node's start script (`.occopus-run.sh`), run by `sh` as the one process the host
//! spawns for a node, so that every step, the service and anything they put in the
//! background share one process group, which destroy stops as a whole. Pure: builds text.
//!
//! What the script does, in order:
//! 1. each `bootcmd` item, then each `runcmd` item, as its own process (a string with
//!    `sh -c`, a list as program and arguments); the first one that exits non-zero ends
//!    the script with that code. Before each, the step's label (`runcmd[1]`) is written to
//!    `.occopus-phase`, so `state` can say where setup is;
//! 2. `ready` is written to `.occopus-phase`;
//! 3. with a service command: it runs in the background and the script waits for it;
//!    when it exits, whatever else is left in the group gets SIGTERM and the script exits
//!    with the service's code (so the host records it). Without one: the script idles,
//!    keeping the group (and anything runcmd left running) under destroy's control.

use crate::config::Command;

/// File (relative to the node directory) with the current phase.
pub const PHASE_FILE: &str = ".occopus-phase";
/// Phase written once setup has succeeded.
pub const READY: &str = "ready";

/// Quote `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The command as shell words.
fn words(c: &Command) -> String {
    match c {
        Command::Shell(s) => format!("sh -c {}", quote(s)),
        Command::Argv(argv) => argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
    }
}

/// One line for the log, without newlines.
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if flat.chars().count() > 200 {
        let cut: String = flat.chars().take(200).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Build the start script.
pub fn build(bootcmd: &[Command], runcmd: &[Command], service: Option<&Command>) -> String {
    let mut s = String::from(
        "# Written by the occopus `local` backend for one node instance; do not edit.\n\
         phase() { printf '%s\\n' \"$1\" > .occopus-phase.tmp && mv -f .occopus-phase.tmp .occopus-phase; }\n\
         step() {\n\
         \x20 label=$1; shift\n\
         \x20 phase \"$label\"\n\
         \x20 \"$@\"\n\
         \x20 rc=$?\n\
         \x20 if [ \"$rc\" -ne 0 ]; then\n\
         \x20   printf 'occopus-local: %s failed with exit code %s\\n' \"$label\" \"$rc\"\n\
         \x20   exit \"$rc\"\n\
         \x20 fi\n\
         }\n",
    );
    let steps = bootcmd
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("bootcmd[{i}]"), c))
        .chain(
            runcmd
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("runcmd[{i}]"), c)),
        );
    for (label, c) in steps {
        s.push_str(&format!(
            "printf 'occopus-local: %s: %s\\n' {} {}\n",
            quote(&label),
            quote(&one_line(&c.display()))
        ));
        s.push_str(&format!("step {} {}\n", quote(&label), words(c)));
    }
    s.push_str(&format!("phase {READY}\n"));
    match service {
        Some(c) => {
            s.push_str(&format!(
                "printf 'occopus-local: service: %s\\n' {}\n",
                quote(&one_line(&c.display()))
            ));
            s.push_str(&format!("{} &\n", words(c)));
            s.push_str(
                "svc=$!\n\
                 wait \"$svc\"\n\
                 rc=$?\n\
                 printf 'occopus-local: service exited with code %s\\n' \"$rc\"\n\
                 trap '' TERM\n\
                 kill -TERM 0 2>/dev/null\n\
                 exit \"$rc\"\n",
            );
        }
        None => s.push_str(
            "printf 'occopus-local: setup finished; no service command\\n'\n\
             while :; do sleep 3600; done\n",
        ),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command as Proc;

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    /// Run a script natively in a temporary directory: this is `sh`, not the host, but it
    /// checks the generated text does what the docs say.
    fn run(script: &str) -> (i32, String, String) {
        let dir = std::env::temp_dir().join(format!(
            "occopus-local-script-{}-{}",
            std::process::id(),
            script.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".occopus-run.sh"), script).unwrap();
        // Its own process group: the script signals its group when the service ends.
        let out = Proc::new("sh")
            .arg(".occopus-run.sh")
            .process_group(0)
            .current_dir(&dir)
            .output()
            .unwrap();
        let phase = std::fs::read_to_string(dir.join(PHASE_FILE)).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            phase.trim().to_string(),
        )
    }

    #[test]
    fn steps_run_in_order_and_stop_at_the_first_failure() {
        let script = build(
            &[Command::Shell("echo boot".into())],
            &[
                Command::Argv(vec!["echo".into(), "it's".into(), "$HOME".into()]),
                Command::Shell("echo two; exit 3".into()),
                Command::Shell("echo never".into()),
            ],
            Some(&Command::Shell("echo service".into())),
        );
        let (code, out, phase) = run(&script);
        assert_eq!(code, 3);
        assert_eq!(phase, "runcmd[1]");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "occopus-local: bootcmd[0]: echo boot",
                "boot",
                "occopus-local: runcmd[0]: echo it's $HOME",
                "it's $HOME",
                "occopus-local: runcmd[1]: echo two; exit 3",
                "two",
                "occopus-local: runcmd[1] failed with exit code 3",
            ]
        );
    }

    #[test]
    fn the_service_exit_code_is_the_script_exit_code() {
        let script = build(&[], &[], Some(&Command::Shell("echo up; exit 7".into())));
        let (code, out, phase) = run(&script);
        assert_eq!((code, phase.as_str()), (7, READY));
        assert!(out.contains("up\n"), "{out}");
        assert!(out.contains("service exited with code 7"), "{out}");
    }
}
