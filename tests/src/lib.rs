//! Support for black-box tests of the `occopus` binary: finds (and builds, once per test
//! process) the binary and the plugins, reads the test environment written by
//! `scripts/testenv.sh`, and runs `occopus` with a private state directory.
//!
//! Owns nothing of the product; must not reach into host crates' internals (tests drive
//! the binary the way a user does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The target directory the running test binary was built into
/// (`<target>/<profile>/deps/<bin>`), which honours `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary under <target>/<profile>/deps")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    c
}

fn locked<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let path = target_dir().join(format!(".occopus-tests-{name}.lock"));
    let file = std::fs::File::create(&path).expect("lock file");
    file.lock().expect("lock");
    let r = f();
    let _ = file.unlock();
    r
}

/// The `occopus` binary of this workspace (debug profile), built on first use.
pub fn occopus_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        locked("bin", || {
            let out = cargo()
                .args(["build", "--quiet", "-p", "occopus-cli"])
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building occopus failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        let p = target_dir().join("debug").join("occopus");
        assert!(p.is_file(), "no binary at {}", p.display());
        p
    })
    .clone()
}

/// `<target>/plugins`, holding every built-in plugin, built on first use with
/// `cargo xtask build-plugins`.
pub fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        locked("plugins", || {
            let out = cargo()
                .args([
                    "run",
                    "--quiet",
                    "-p",
                    "occopus-xtask",
                    "--",
                    "build-plugins",
                ])
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building the plugins failed (`cargo xtask build-plugins`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
        target_dir().join("plugins")
    })
    .clone()
}

/// A directory holding copies of the named misbehaving test plugins (`trap`, `loop`,
/// `membomb`, ... from `plugins/fixtures/`), built on first use with
/// `cargo xtask build-plugins --fixtures`.
pub fn fixture_subset(names: &[&str]) -> tempfile::TempDir {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let all = DIR
        .get_or_init(|| {
            locked("plugins", || {
                let out = cargo()
                    .args(["run", "--quiet", "-p", "occopus-xtask", "--"])
                    .args(["build-plugins", "--fixtures"])
                    .output()
                    .expect("running cargo");
                assert!(
                    out.status.success(),
                    "building the plugins failed (`cargo xtask build-plugins --fixtures`):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
            target_dir().join("plugins-fixtures")
        })
        .clone();
    let d = tempfile::tempdir().expect("tempdir");
    for n in names {
        let from = all.join(format!("{n}.wasm"));
        std::fs::copy(&from, d.path().join(format!("{n}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
    d
}

/// A directory holding copies of only the named built plugins (`sim`, `basic`, ...).
pub fn plugin_subset(names: &[&str]) -> tempfile::TempDir {
    let all = plugin_dir();
    let d = tempfile::tempdir().expect("tempdir");
    for n in names {
        let from = all.join(format!("{n}.wasm"));
        std::fs::copy(&from, d.path().join(format!("{n}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
    d
}

/// The variables of the test environment (`scripts/testenv.sh up` writes them to
/// `$OCCOPUS_TESTENV_DIR/env`, default `<target>/testenv/env`). Empty if it is missing.
pub fn testenv() -> HashMap<String, String> {
    let dir = std::env::var_os("OCCOPUS_TESTENV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("testenv"));
    let Ok(text) = std::fs::read_to_string(dir.join("env")) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A description (`infra.yaml`) with its node definitions beside it
/// (`nodes/node_definitions.yaml`), in a temporary directory of its own.
pub struct Desc {
    dir: tempfile::TempDir,
}

impl Desc {
    pub fn new(infra: &str, nodes: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nodes")).unwrap();
        std::fs::write(dir.path().join("infra.yaml"), infra).unwrap();
        std::fs::write(dir.path().join("nodes/node_definitions.yaml"), nodes).unwrap();
        Self { dir }
    }
    /// The directory holding both (free for a test's own files too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn infra(&self) -> PathBuf {
        self.dir.path().join("infra.yaml")
    }
    pub fn nodes(&self) -> PathBuf {
        self.dir.path().join("nodes/node_definitions.yaml")
    }
}

/// What one `occopus` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Panic with both streams unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    /// [`expect_code`](Self::expect_code) 0.
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }
}

/// `occopus` with a private state directory, cache and plugin directory, and no
/// operator config or auth data from the user's home.
pub struct Occopus {
    pub state: tempfile::TempDir,
    pub plugin_dirs: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Occopus {
    /// With every built plugin.
    pub fn new() -> Self {
        Self::with_plugin_dirs(vec![plugin_dir()])
    }

    /// With only these plugin directories.
    pub fn with_plugin_dirs(plugin_dirs: Vec<PathBuf>) -> Self {
        Self {
            state: tempfile::tempdir().expect("tempdir"),
            plugin_dirs,
            cwd: workspace_root(),
            env: Vec::new(),
        }
    }

    /// The command, ready for more arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(occopus_bin());
        let home = self.state.path().join("home");
        let _ = std::fs::create_dir_all(&home);
        c.current_dir(&self.cwd)
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", self.cache_dir())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("OCCOPUS_CONFIG")
            .env_remove("OCCOPUS_AUTH_DATA_PATH")
            .env_remove("OCCOPUS_PLUGIN_PATH")
            .env("OCCOPUS_STATE_DIR", self.state.path().join("state"));
        for d in &self.plugin_dirs {
            c.arg("--plugin-dir").arg(d);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The compiled-plugin cache shared by every test of this target directory (so each
    /// test does not compile the plugins again).
    pub fn cache_dir(&self) -> PathBuf {
        target_dir().join("test-cache")
    }

    /// Run `occopus ARGS...` and wait.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Run::from(self.command().args(args).output().expect("running occopus"))
    }
}

impl Default for Occopus {
    fn default() -> Self {
        Self::new()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The Occopus tutorial corpus shipped beside the repository (`../shared/corpus/occopus`),
/// if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = workspace_root().join("../shared/corpus/occopus");
    d.is_dir().then_some(d)
}
