//! Local processes through the host's `process` import (the `local` backend; needs the
//! `process` capability). Every path is relative to the node instance's own working
//! directory, which the host derives from the call's infra id and node id; a path that
//! escapes it is `denied`. Outside the plugin host every call returns an internal error.

use crate::error::Result;
use serde::{Deserialize, Serialize};

/// A process started by [`spawn`], identified so that a reused pid is not mistaken for
/// it. Serialisable: keep it in instance data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessHandle {
    /// Process id.
    pub pid: u32,
    /// Start time as the kernel reports it (clock ticks since boot).
    pub start_time: u64,
}

/// What became of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Still running.
    Running,
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signalled(i32),
    /// No such process (and no recorded exit status).
    Gone,
}

/// What to run: program and arguments, environment, working directory, log file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Relative working directory (empty: the node directory).
    pub cwd: String,
    /// Relative file receiving stdout and stderr (appended).
    pub log_file: String,
}

impl Command {
    /// Run `argv` (`["sh", "-c", "..."]`) in the node directory, logging to `output.log`.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: String::new(),
            log_file: "output.log".into(),
        }
    }
    /// Add an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Set the relative working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = dir.into();
        self
    }
    /// Set the relative log file.
    pub fn log_file(mut self, file: impl Into<String>) -> Self {
        self.log_file = file.into();
        self
    }
}

/// The node directory's absolute path (for messages).
pub fn workdir() -> Result<String> {
    imp::workdir()
}
/// Write a file (creating parent directories) with optional permission bits.
pub fn write_file(path: &str, contents: &[u8], mode: Option<u32>) -> Result<()> {
    imp::write_file(path, contents, mode)
}
/// Read up to the last `max_bytes` of a file.
pub fn read_tail(path: &str, max_bytes: u64) -> Result<Vec<u8>> {
    imp::read_tail(path, max_bytes)
}
/// Start a detached process (own session and process group) that outlives the host.
pub fn spawn(cmd: &Command) -> Result<ProcessHandle> {
    imp::spawn(cmd)
}
/// Run a process to completion (bounded by `timeout_ms` and the call budget); returns
/// its exit code.
pub fn run(cmd: &Command, timeout_ms: u64) -> Result<i32> {
    imp::run(cmd, timeout_ms)
}
/// The status of a spawned process.
pub fn status(p: ProcessHandle) -> Result<ProcessStatus> {
    imp::status(p)
}
/// Stop the whole process group: SIGTERM, then SIGKILL after `grace_ms`. Gone is success.
pub fn kill(p: ProcessHandle, grace_ms: u64) -> Result<()> {
    imp::kill(p, grace_ms)
}
/// A loopback address (`127.0.0.x`) reserved for this node instance.
pub fn loopback_address() -> Result<String> {
    imp::loopback_address()
}
/// Release what [`loopback_address`] reserved and remove the node directory unless
/// `keep`.
pub fn release(keep: bool) -> Result<()> {
    imp::release(keep)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Command, ProcessHandle, ProcessStatus};
    use crate::bindings::host::occopus::plugin::process as wit;
    use crate::error::Result;

    fn request(c: &Command) -> wit::SpawnRequest {
        wit::SpawnRequest {
            argv: c.argv.clone(),
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            log_file: c.log_file.clone(),
        }
    }
    fn handle(p: ProcessHandle) -> wit::ProcessHandle {
        wit::ProcessHandle {
            pid: p.pid,
            start_time: p.start_time,
        }
    }
    pub(super) fn workdir() -> Result<String> {
        Ok(wit::workdir()?)
    }
    pub(super) fn write_file(path: &str, contents: &[u8], mode: Option<u32>) -> Result<()> {
        Ok(wit::write_file(path, contents, mode)?)
    }
    pub(super) fn read_tail(path: &str, max_bytes: u64) -> Result<Vec<u8>> {
        Ok(wit::read_tail(path, max_bytes)?)
    }
    pub(super) fn spawn(cmd: &Command) -> Result<ProcessHandle> {
        let h = wit::spawn(&request(cmd))?;
        Ok(ProcessHandle {
            pid: h.pid,
            start_time: h.start_time,
        })
    }
    pub(super) fn run(cmd: &Command, timeout_ms: u64) -> Result<i32> {
        Ok(wit::run(&request(cmd), timeout_ms)?)
    }
    pub(super) fn status(p: ProcessHandle) -> Result<ProcessStatus> {
        Ok(match wit::status(handle(p))? {
            wit::ProcessStatus::Running => ProcessStatus::Running,
            wit::ProcessStatus::Exited(c) => ProcessStatus::Exited(c),
            wit::ProcessStatus::Signalled(s) => ProcessStatus::Signalled(s),
            wit::ProcessStatus::Gone => ProcessStatus::Gone,
        })
    }
    pub(super) fn kill(p: ProcessHandle, grace_ms: u64) -> Result<()> {
        Ok(wit::kill(handle(p), grace_ms)?)
    }
    pub(super) fn loopback_address() -> Result<String> {
        Ok(wit::loopback_address()?)
    }
    pub(super) fn release(keep: bool) -> Result<()> {
        Ok(wit::release(keep)?)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Command, ProcessHandle, ProcessStatus};
    use crate::error::{PluginError, Result};

    fn unavailable<T>() -> Result<T> {
        Err(PluginError::internal(
            "the `process` host import is only available inside the plugin host",
        ))
    }
    pub(super) fn workdir() -> Result<String> {
        unavailable()
    }
    pub(super) fn write_file(_: &str, _: &[u8], _: Option<u32>) -> Result<()> {
        unavailable()
    }
    pub(super) fn read_tail(_: &str, _: u64) -> Result<Vec<u8>> {
        unavailable()
    }
    pub(super) fn spawn(_: &Command) -> Result<ProcessHandle> {
        unavailable()
    }
    pub(super) fn run(_: &Command, _: u64) -> Result<i32> {
        unavailable()
    }
    pub(super) fn status(_: ProcessHandle) -> Result<ProcessStatus> {
        unavailable()
    }
    pub(super) fn kill(_: ProcessHandle, _: u64) -> Result<()> {
        unavailable()
    }
    pub(super) fn loopback_address() -> Result<String> {
        unavailable()
    }
    pub(super) fn release(_: bool) -> Result<()> {
        unavailable()
    }
}
