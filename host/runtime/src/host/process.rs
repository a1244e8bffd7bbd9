//! `occopus:plugin/process`: local processes for the `local` backend.
//!
//! The import requires the `process` capability and a node in the call's context; every
//! path is relative to the node directory `<work_root>/<infra_id>/nodes/<node_id>/`.
//! [`ProcessManager`] is the real implementation:
//!
//! * `write-file`/`read-tail` refuse absolute paths, `..`, and symlinks leading out of the
//!   node directory; the final component is opened with `O_NOFOLLOW`.
//! * `spawn` starts `/bin/sh -c <wrapper> argv...` with `setsid` (own session and process
//!   group, no controlling terminal), stdin from `/dev/null`, stdout and stderr appended
//!   to the log file. The wrapper reads the path of its exit-status file from a pipe
//!   (so the host can name it after the pid and kernel start time, and a wrapper whose
//!   host died before telling it runs nothing), runs the program and writes `$?` there.
//!   The process outlives the orchestrator; `status` works from any later process.
//! * `status` trusts a pid only when `/proc/<pid>/stat` field 22 (start time) matches, so a
//!   reused pid is not mistaken for ours.
//! * `kill` sends SIGTERM to the process group, then SIGKILL after the grace period.
//! * `loopback-address` allocates `127.0.0.x` (x from 2 up) per node, recorded in
//!   `<work_root>/loopback.json` under an exclusive `flock` so concurrent CLIs never hand
//!   out the same address; addresses of vanished nodes and ones with a listening socket
//!   are skipped; `release` frees it.
//!
//! Must not: touch anything outside the node directory (except the loopback registry).

use super::{NodeScope, ProcessHandle, ProcessStatus, SpawnRequest};
use crate::bindings::host_api::occopus::plugin::process as wit;
use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::convert::error_to_wit;
use crate::state::PluginState;
use occopus_model::plugin::PluginError;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Largest file `write-file` accepts, and largest tail `read-tail` returns.
const MAX_FILE: usize = 64 << 20;
const MAX_TAIL: u64 = 1 << 20;
const MAX_ARGS: usize = 4096;

/// The exit-status recorder around every spawned program (see the module docs).
const WRAPPER: &str = r#"IFS= read -r f || exit 125
trap ':' TERM INT HUP
"$@" </dev/null
c=$?
printf '%s\n' "$c" > "$f.tmp" && mv -f "$f.tmp" "$f"
exit "$c""#;

// ---------------------------------------------------------------------------------
// The import: checks, then delegation to the services.

impl PluginState {
    fn process_scope(&self) -> Result<NodeScope, PluginError> {
        if !self.shared.grants.process() {
            let name = self.plugin();
            return Err(PluginError::Denied(format!(
                "local processes are not granted to plugin `{name}`; grant them with plugins.{name}.process: true in the operator config (and request `process` in the plugin's capabilities)"
            )));
        }
        let node = self.call.node.as_ref().ok_or_else(|| {
            PluginError::Internal(format!(
                "process functions need a node, and `{}` is not about one",
                self.call.operation
            ))
        })?;
        Ok(NodeScope {
            infra_id: safe_id("infra id", node.infra_id.as_str())?,
            node_id: safe_id("node id", node.node_id.as_str())?,
        })
    }

    fn spawn_request(&self, req: wit::SpawnRequest) -> Result<SpawnRequest, PluginError> {
        if req.argv.is_empty() || req.argv[0].is_empty() {
            return Err(PluginError::Internal("spawn: argv is empty".into()));
        }
        if req.argv.len() > MAX_ARGS
            || req
                .argv
                .iter()
                .chain(req.env.iter().map(|(k, _)| k))
                .any(|a| a.contains('\0'))
        {
            return Err(PluginError::Internal(
                "spawn: too many arguments, or a NUL byte in argv/env".into(),
            ));
        }
        if !req.cwd.is_empty() {
            relative(&req.cwd)?;
        }
        relative(&req.log_file)?;
        Ok(SpawnRequest {
            argv: req.argv,
            env: req.env,
            cwd: req.cwd,
            log_file: req.log_file,
        })
    }
}

macro_rules! guarded {
    ($self:ident, $name:literal, |$scope:ident, $services:ident| $body:expr) => {{
        let r: Result<_, PluginError> = async {
            let $scope = $self.process_scope()?;
            let $services = $self.services();
            $self.call.in_host_call = Some($name);
            let r = $body.await;
            $self.call.in_host_call = None;
            r
        }
        .await;
        Ok(r.map_err(error_to_wit))
    }};
}

impl wit::Host for PluginState {
    async fn workdir(&mut self) -> wasmtime::Result<Result<String, WitError>> {
        guarded!(self, "process.workdir", |scope, s| s.workdir(&scope))
    }

    async fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        mode: Option<u32>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        guarded!(self, "process.write-file", |scope, s| async {
            relative(&path)?;
            if contents.len() > MAX_FILE {
                return Err(PluginError::Internal(format!(
                    "write-file: {} bytes exceed the limit of {MAX_FILE}",
                    contents.len()
                )));
            }
            s.write_file(&scope, &path, &contents, mode).await
        })
    }

    async fn read_tail(
        &mut self,
        path: String,
        max_bytes: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        guarded!(self, "process.read-tail", |scope, s| async {
            relative(&path)?;
            s.read_tail(&scope, &path, max_bytes.min(MAX_TAIL)).await
        })
    }

    async fn spawn(
        &mut self,
        req: wit::SpawnRequest,
    ) -> wasmtime::Result<Result<wit::ProcessHandle, WitError>> {
        let req = match self.spawn_request(req) {
            Ok(r) => r,
            Err(e) => return Ok(Err(error_to_wit(e))),
        };
        guarded!(self, "process.spawn", |scope, s| async {
            s.spawn(&scope, &req).await.map(|h| wit::ProcessHandle {
                pid: h.pid,
                start_time: h.start_time,
            })
        })
    }

    async fn run(
        &mut self,
        req: wit::SpawnRequest,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<i32, WitError>> {
        let req = match self.spawn_request(req) {
            Ok(r) => r,
            Err(e) => return Ok(Err(error_to_wit(e))),
        };
        let t = Duration::from_millis(timeout_ms).min(self.call.remaining());
        guarded!(self, "process.run", |scope, s| s.run(&scope, &req, t))
    }

    async fn status(
        &mut self,
        p: wit::ProcessHandle,
    ) -> wasmtime::Result<Result<wit::ProcessStatus, WitError>> {
        let h = ProcessHandle {
            pid: p.pid,
            start_time: p.start_time,
        };
        guarded!(self, "process.status", |scope, s| async {
            s.status(&scope, h).await.map(|st| match st {
                ProcessStatus::Running => wit::ProcessStatus::Running,
                ProcessStatus::Exited(c) => wit::ProcessStatus::Exited(c),
                ProcessStatus::Signalled(c) => wit::ProcessStatus::Signalled(c),
                ProcessStatus::Gone => wit::ProcessStatus::Gone,
            })
        })
    }

    async fn kill(
        &mut self,
        p: wit::ProcessHandle,
        grace_ms: u64,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let h = ProcessHandle {
            pid: p.pid,
            start_time: p.start_time,
        };
        let grace = Duration::from_millis(grace_ms).min(self.call.remaining());
        guarded!(self, "process.kill", |scope, s| s.kill(&scope, h, grace))
    }

    async fn loopback_address(&mut self) -> wasmtime::Result<Result<String, WitError>> {
        guarded!(self, "process.loopback-address", |scope, s| s
            .loopback_address(&scope))
    }

    async fn release(&mut self, keep: bool) -> wasmtime::Result<Result<(), WitError>> {
        guarded!(self, "process.release", |scope, s| s.release(&scope, keep))
    }
}

/// An id usable as one path component.
pub(crate) fn safe_id(what: &str, s: &str) -> Result<String, PluginError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(PluginError::Internal(format!(
            "{what} `{s}` cannot name a directory"
        )))
    }
}

/// Lexical check of a plugin-supplied relative path.
pub(crate) fn relative(p: &str) -> Result<(), PluginError> {
    let path = Path::new(p);
    if p.is_empty() || p.contains('\0') {
        return Err(PluginError::Denied(format!(
            "path `{p}` is empty or contains NUL"
        )));
    }
    if path.is_absolute() {
        return Err(PluginError::Denied(format!(
            "path `{p}` is absolute; paths are relative to the node directory"
        )));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(PluginError::Denied(format!(
            "path `{p}` leaves the node directory"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The real implementation.

/// Local process control rooted at a work directory.
#[derive(Debug, Clone)]
pub struct ProcessManager {
    work_root: Option<PathBuf>,
}

fn io_err(what: &str, e: std::io::Error) -> PluginError {
    PluginError::Internal(format!("{what}: {e}"))
}

fn mkdir_private(p: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

impl ProcessManager {
    pub fn new(work_root: Option<PathBuf>) -> Self {
        Self { work_root }
    }

    fn root(&self) -> Result<&Path, PluginError> {
        self.work_root.as_deref().ok_or_else(|| {
            PluginError::Internal("no work directory is configured for local processes".into())
        })
    }

    /// `<work_root>/<infra>/nodes/<node>`, created.
    pub fn node_dir(&self, node: &NodeScope) -> Result<PathBuf, PluginError> {
        let d = self
            .root()?
            .join(&node.infra_id)
            .join("nodes")
            .join(&node.node_id);
        mkdir_private(&d).map_err(|e| io_err(&format!("creating {}", d.display()), e))?;
        d.canonicalize()
            .map_err(|e| io_err(&format!("resolving {}", d.display()), e))
    }

    /// Resolve `rel` inside `dir`, creating missing parent directories one by one and
    /// refusing any existing component that resolves outside `dir`.
    fn inside(dir: &Path, rel: &str, create_parents: bool) -> Result<PathBuf, PluginError> {
        relative(rel)?;
        let path = Path::new(rel);
        let parent = path.parent().unwrap_or(Path::new(""));
        let mut cur = dir.to_path_buf();
        for c in parent.components() {
            let Component::Normal(name) = c else { continue };
            cur.push(name);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    let real = cur
                        .canonicalize()
                        .map_err(|e| io_err(&format!("resolving {}", cur.display()), e))?;
                    if !real.starts_with(dir) {
                        return Err(PluginError::Denied(format!(
                            "path `{rel}` leaves the node directory through a symlink"
                        )));
                    }
                    cur = real;
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(PluginError::Internal(format!(
                        "`{}` is not a directory",
                        cur.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_parents => {
                    mkdir_private(&cur)
                        .map_err(|e| io_err(&format!("creating {}", cur.display()), e))?;
                }
                Err(e) => return Err(io_err(&format!("reading {}", cur.display()), e)),
            }
        }
        match path.file_name() {
            Some(f) => Ok(cur.join(f)),
            None => Ok(cur),
        }
    }

    pub fn write_file(
        &self,
        node: &NodeScope,
        rel: &str,
        contents: &[u8],
        mode: Option<u32>,
    ) -> Result<(), PluginError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.node_dir(node)?;
        let target = Self::inside(&dir, rel, true)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode.unwrap_or(0o600) & 0o7777)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    PluginError::Denied(format!("path `{rel}` is a symlink"))
                } else {
                    io_err(&format!("writing {}", target.display()), e)
                }
            })?;
        f.write_all(contents)
            .map_err(|e| io_err(&format!("writing {}", target.display()), e))?;
        if let Some(m) = mode {
            f.set_permissions(fs::Permissions::from_mode(m & 0o7777))
                .map_err(|e| io_err(&format!("chmod {}", target.display()), e))?;
        }
        Ok(())
    }

    pub fn read_tail(&self, node: &NodeScope, rel: &str, max: u64) -> Result<Vec<u8>, PluginError> {
        let dir = self.node_dir(node)?;
        let target = Self::inside(&dir, rel, false)?;
        let mut f = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PluginError::NotFound(format!(
                    "`{rel}` does not exist in the node directory"
                )));
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(PluginError::Denied(format!("path `{rel}` is a symlink")));
            }
            Err(e) => return Err(io_err(&format!("reading {}", target.display()), e)),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(max);
        f.seek(SeekFrom::Start(from))
            .map_err(|e| io_err("seek", e))?;
        let mut out = Vec::new();
        f.take(max)
            .read_to_end(&mut out)
            .map_err(|e| io_err(&format!("reading {}", target.display()), e))?;
        Ok(out)
    }

    fn open_log(dir: &Path, rel: &str) -> Result<fs::File, PluginError> {
        let target = Self::inside(dir, rel, true)?;
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| io_err(&format!("opening log {}", target.display()), e))
    }

    fn command(
        &self,
        dir: &Path,
        req: &SpawnRequest,
    ) -> Result<tokio::process::Command, PluginError> {
        let cwd = if req.cwd.is_empty() {
            dir.to_path_buf()
        } else {
            Self::inside(dir, &req.cwd, true)?
        };
        if !cwd.is_dir() {
            mkdir_private(&cwd).map_err(|e| io_err(&format!("creating {}", cwd.display()), e))?;
        }
        let log = Self::open_log(dir, &req.log_file)?;
        let log2 = log.try_clone().map_err(|e| io_err("log file", e))?;
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.current_dir(&cwd)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("OCCOPUS_NODE_DIR", dir)
            .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log)
            .stderr(log2);
        Ok(cmd)
    }

    pub async fn spawn(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
    ) -> Result<ProcessHandle, PluginError> {
        use tokio::io::AsyncWriteExt;
        let dir = self.node_dir(node)?;
        let mut cmd = self.command(&dir, req)?;
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("occopus-spawn")
            .args(&req.argv)
            .stdin(std::process::Stdio::piped());
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(&format!("starting `{}`", req.argv[0]), e))?;
        let pid = child
            .id()
            .ok_or_else(|| PluginError::Internal("spawned process vanished".into()))?;
        let start_time = match proc_stat(pid) {
            Some((_, t)) => t,
            None => {
                return Err(PluginError::Internal(format!(
                    "spawned process {pid} vanished at once"
                )));
            }
        };
        let exit_file = dir.join(format!(".exit.{pid}.{start_time}"));
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| PluginError::Internal("no pipe to the process".into()))?;
        let line = format!("{}\n", exit_file.display());
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| io_err("starting the process", e))?;
        drop(stdin);
        // Reap it while we live; after we exit, init does.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(ProcessHandle { pid, start_time })
    }

    pub async fn run(
        &self,
        node: &NodeScope,
        req: &SpawnRequest,
        timeout: Duration,
    ) -> Result<i32, PluginError> {
        let dir = self.node_dir(node)?;
        let mut cmd = self.command(&dir, req)?;
        cmd.arg("-c")
            .arg(r#""$@" </dev/null"#)
            .arg("occopus-run")
            .args(&req.argv)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(&format!("starting `{}`", req.argv[0]), e))?;
        let pid = child.id();
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(s)) => {
                use std::os::unix::process::ExitStatusExt;
                Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
            }
            Ok(Err(e)) => Err(io_err("waiting for the process", e)),
            Err(_) => {
                if let Some(pid) = pid {
                    // SAFETY: signalling our own child's process group.
                    unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
                }
                Err(PluginError::Timeout(format!(
                    "`{}` did not finish within {} ms",
                    req.argv[0],
                    timeout.as_millis()
                )))
            }
        }
    }

    fn alive(p: ProcessHandle) -> bool {
        matches!(proc_stat(p.pid), Some((state, t)) if t == p.start_time && state != 'Z' && state != 'X')
    }

    pub fn status(&self, node: &NodeScope, p: ProcessHandle) -> Result<ProcessStatus, PluginError> {
        if Self::alive(p) {
            return Ok(ProcessStatus::Running);
        }
        let dir = self.node_dir(node)?;
        let file = dir.join(format!(".exit.{}.{}", p.pid, p.start_time));
        match fs::read_to_string(&file) {
            Ok(s) => match s.trim().parse::<i32>() {
                Ok(c) if (129..=192).contains(&c) => Ok(ProcessStatus::Signalled(c - 128)),
                Ok(c) => Ok(ProcessStatus::Exited(c)),
                Err(_) => Ok(ProcessStatus::Gone),
            },
            Err(_) => Ok(ProcessStatus::Gone),
        }
    }

    pub async fn kill(
        &self,
        _node: &NodeScope,
        p: ProcessHandle,
        grace: Duration,
    ) -> Result<(), PluginError> {
        if !Self::alive(p) {
            return Ok(());
        }
        let pgid = p.pid as libc::pid_t;
        // SAFETY: kill(2) with a verified process group id.
        unsafe { libc::killpg(pgid, libc::SIGTERM) };
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if group_gone(pgid) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if Self::alive(p) || !group_gone(pgid) {
            // SAFETY: as above.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
            for _ in 0..50 {
                if group_gone(pgid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    fn registry_paths(&self) -> Result<(PathBuf, PathBuf), PluginError> {
        let root = self.root()?;
        mkdir_private(root).map_err(|e| io_err(&format!("creating {}", root.display()), e))?;
        Ok((root.join("loopback.json"), root.join(".loopback.lock")))
    }

    /// Run `f` on the loopback registry under an exclusive lock, saving it afterwards.
    async fn with_registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, String>, &Path) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let (file, lock) = self.registry_paths()?;
        let root = self.root()?.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let lf = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&lock)
                .map_err(|e| io_err(&format!("opening {}", lock.display()), e))?;
            let _guard = Flock::exclusive(&lf)
                .map_err(|e| io_err(&format!("locking {}", lock.display()), e))?;
            let mut map: BTreeMap<String, String> = match fs::read(&file) {
                Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                    PluginError::Internal(format!("{} is damaged: {e}", file.display()))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(io_err(&format!("reading {}", file.display()), e)),
            };
            let before = map.clone();
            let out = f(&mut map, &root)?;
            if map != before {
                let tmp = file.with_extension("json.tmp");
                let bytes = serde_json::to_vec_pretty(&map)
                    .map_err(|e| PluginError::Internal(e.to_string()))?;
                let mut t = fs::File::create(&tmp)
                    .map_err(|e| io_err(&format!("writing {}", tmp.display()), e))?;
                t.write_all(&bytes)
                    .and_then(|_| t.sync_all())
                    .map_err(|e| io_err(&format!("writing {}", tmp.display()), e))?;
                fs::rename(&tmp, &file)
                    .map_err(|e| io_err(&format!("writing {}", file.display()), e))?;
            }
            Ok(out)
        })
        .await
        .map_err(|e| PluginError::Internal(format!("loopback registry task failed: {e}")))?
    }

    pub async fn loopback_address(&self, node: &NodeScope) -> Result<String, PluginError> {
        self.node_dir(node)?;
        let owner = format!("{}/{}", node.infra_id, node.node_id);
        self.with_registry(move |map, root| {
            if let Some((addr, _)) = map.iter().find(|(_, o)| **o == owner) {
                return Ok(addr.clone());
            }
            // Forget addresses whose node directory is gone.
            map.retain(|_, o| {
                let mut parts = o.splitn(2, '/');
                match (parts.next(), parts.next()) {
                    (Some(i), Some(n)) => root.join(i).join("nodes").join(n).is_dir(),
                    _ => false,
                }
            });
            let listening = listening_v4();
            for n in 2u32..(1 << 16) {
                let ip = Ipv4Addr::from(0x7f00_0000 | n);
                let last = ip.octets()[3];
                if last == 0 || last == 255 {
                    continue;
                }
                let s = ip.to_string();
                if map.contains_key(&s) || listening.contains(&ip) {
                    continue;
                }
                map.insert(s.clone(), owner.clone());
                return Ok(s);
            }
            Err(PluginError::Internal(
                "no free loopback address in 127.0.0.0/16".into(),
            ))
        })
        .await
    }

    pub async fn release(&self, node: &NodeScope, keep: bool) -> Result<(), PluginError> {
        let owner = format!("{}/{}", node.infra_id, node.node_id);
        if self.work_root.is_some() {
            self.with_registry(move |map, _| {
                map.retain(|_, o| *o != owner);
                Ok(())
            })
            .await?;
        }
        if !keep {
            let d = self
                .root()?
                .join(&node.infra_id)
                .join("nodes")
                .join(&node.node_id);
            match fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&format!("removing {}", d.display()), e)),
            }
        }
        Ok(())
    }
}

/// An exclusive `flock` held until drop.
struct Flock<'a>(&'a fs::File);

impl<'a> Flock<'a> {
    fn exclusive(f: &'a fs::File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on an open descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Self(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking a descriptor we locked.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// `(state, start time)` from `/proc/<pid>/stat` (fields 3 and 22).
pub(crate) fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether no live process is left in the group. Zombies do not count: once the
/// processes that spawned them have exited, they wait for whoever reaps orphans (init,
/// or a container's first process, which may take its time) and hold nothing.
fn group_gone(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::killpg(pgid, 0) };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    !entries.filter_map(Result::ok).any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        proc_group(pid).is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
    })
}

/// State and process group of `pid`, from `/proc/<pid>/stat`.
fn proc_group(pid: u32) -> Option<(char, libc::pid_t)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state: ppid, then pgrp.
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// IPv4 addresses with a listening TCP socket (from `/proc/net/tcp`).
fn listening_v4() -> Vec<Ipv4Addr> {
    let Ok(s) = fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address is `AABBCCDD:PPPP` (little-endian hex); state 0A = LISTEN.
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let hex = f.get(1)?.split(':').next()?;
            u32::from_str_radix(hex, 16)
                .ok()
                .map(|v| Ipv4Addr::from(u32::from_be(v)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_only() {
        assert!(relative("a/b.txt").is_ok());
        assert!(relative("./a").is_ok());
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(
                matches!(relative(bad), Err(PluginError::Denied(_))),
                "{bad}"
            );
        }
        assert!(safe_id("node id", "3f2a-b").is_ok());
        assert!(safe_id("node id", "..").is_err());
        assert!(safe_id("node id", "a/b").is_err());
    }

    #[test]
    fn own_process_stat() {
        let (state, start) = proc_stat(std::process::id()).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert!(start > 0);
    }
}
