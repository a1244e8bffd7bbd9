//! `local`: a resource handler that runs each node instance on this machine, as a process
//! group in its own working directory (`<work root>/<infra id>/nodes/<node id>/`, made and
//! guarded by the host) with its own loopback address (`127.0.0.x`). Contextualisation is
//! the part of cloud-init that makes sense for a process: `write_files`, `bootcmd`,
//! `runcmd` (or a `#!` script); the service is the section's `command`. The user guide is
//! `docs/local-backend.md`.
//!
//! Layout: [`config`] (section and schema), [`yaml`], [`cloudinit`], [`script`] (the
//! node's start script) and [`node`] (plan, instance data, state mapping) are plain Rust,
//! unit-tested natively; this file binds them to the host's `process`, `clock` and `log`
//! imports. Must not: reach anything outside the node directory except through the host
//! (which enforces it), or keep state between calls outside the instance data and the
//! node directory.
//!
//! * `create` writes the files and `.occopus-run.sh`, spawns `sh .occopus-run.sh` (output
//!   appended to `node.log`), and keeps the instance data in `.occopus-instance.json` too,
//!   so a retried `create` (or `find`) adopts the process made for the same node id.
//! * `state` follows the process and the phase file the script writes.
//! * `destroy` stops the whole process group (SIGTERM, SIGKILL after `stop_grace`),
//!   frees the address and removes the directory unless `keep_workdir`.

pub mod cloudinit;
pub mod config;
pub mod node;
pub mod script;
pub mod yaml;

use config::LocalSection;
use node::{INSTANCE_FILE, Instance, LOG_FILE, SCRIPT_FILE};
use occopus_sdk::prelude::*;
use occopus_sdk::process::{self, ProcessStatus};
use occopus_sdk::{clock, log};

/// The `local` resource handler.
#[derive(Default)]
pub struct Local;

/// `read_tail` that treats a missing file as `None`.
fn read_optional(path: &str, max: u64) -> Result<Option<Vec<u8>>> {
    match process::read_tail(path, max) {
        Ok(b) => Ok(Some(b)),
        Err(PluginError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn log_tail() -> String {
    match read_optional(LOG_FILE, node::TAIL_BYTES) {
        Ok(Some(b)) => node::tail_lines(&b),
        Ok(None) => String::new(),
        Err(e) => format!("({LOG_FILE} unreadable: {e})"),
    }
}

/// The instance recorded in the node directory, if its process is not gone.
fn recorded_instance() -> Result<Option<Instance>> {
    let Some(bytes) = read_optional(INSTANCE_FILE, 1 << 16)? else {
        return Ok(None);
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        log::warn(format!("ignoring a damaged {INSTANCE_FILE}"));
        return Ok(None);
    };
    let Ok(inst) = Instance::parse(&v) else {
        log::warn(format!(
            "ignoring an {INSTANCE_FILE} of another plugin version"
        ));
        return Ok(None);
    };
    match process::status(inst.process)? {
        ProcessStatus::Gone => Ok(None),
        _ => Ok(Some(inst)),
    }
}

fn write_files(files: &[cloudinit::FileSpec]) -> Result<()> {
    for f in files {
        let content = if f.append {
            let mut old = read_optional(&f.path, 1 << 20)?.unwrap_or_default();
            old.extend_from_slice(&f.content);
            old
        } else {
            f.content.clone()
        };
        process::write_file(&f.path, &content, Some(f.mode))?;
    }
    Ok(())
}

impl ResourceHandler for Local {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("local")
            .handles("local", config::schema())
            .capability("process")
    }

    fn validate(&self, _type_name: &str, section: &Value) -> Result<()> {
        LocalSection::parse(section).map(drop)
    }

    fn create(&self, req: &CreateRequest) -> Result<Value> {
        let section = LocalSection::parse(&req.resource)?;
        // Everything that can be wrong with the description fails before any effect.
        let plan = node::plan(&section, req.context.as_deref(), &req.attributes)?;
        if let Some(inst) = recorded_instance()? {
            log::info(format!(
                "adopting the process group {} already started for node {}",
                inst.process.pid, req.node.node_id
            ));
            return inst.to_value();
        }
        for w in &plan.warnings {
            log::warn(w.as_str());
        }
        let workdir = process::workdir()?;
        let address = process::loopback_address()?;
        write_files(&plan.files)?;
        process::write_file(SCRIPT_FILE, plan.script().as_bytes(), Some(0o700))?;
        process::write_file(script::PHASE_FILE, b"starting\n", Some(0o600))?;
        let env = node::environment(&req.node, &address, &workdir, &plan.env);
        let mut cmd = process::Command::new(["sh", SCRIPT_FILE]).log_file(LOG_FILE);
        cmd.env = env;
        let handle = process::spawn(&cmd)?;
        let inst = Instance {
            process: handle,
            address,
            workdir,
            service: plan.service.is_some(),
            keep_workdir: section.keep_workdir,
            stop_grace_ms: section.stop_grace_s * 1000,
            setup_timeout_ms: section.setup_timeout_s * 1000,
            created_ms: clock::now_ms(),
        };
        let data = inst.to_value()?;
        process::write_file(INSTANCE_FILE, data.to_string().as_bytes(), Some(0o600))?;
        log::info(format!(
            "node {} started: process group {}, address {}, log {}/{LOG_FILE}",
            req.node.node_id, handle.pid, inst.address, inst.workdir
        ));
        Ok(data)
    }

    fn find(&self, req: &CreateRequest) -> Result<Option<Value>> {
        LocalSection::parse(&req.resource)?;
        recorded_instance()?.map(|i| i.to_value()).transpose()
    }

    fn state(&self, inst: &InstanceRef) -> Result<ResourceState> {
        let i: Instance = inst.instance()?;
        let status = process::status(i.process)?;
        let phase = match status {
            ProcessStatus::Gone => None,
            _ => read_optional(script::PHASE_FILE, 256)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        };
        Ok(node::state(
            &i,
            status,
            phase.as_deref(),
            clock::now_ms(),
            log_tail,
        ))
    }

    fn addresses(&self, inst: &InstanceRef) -> Result<Addresses> {
        Ok(Addresses::single(inst.instance::<Instance>()?.address))
    }

    fn destroy(&self, inst: &InstanceRef) -> Result<()> {
        // Instance data from create, or (if create never returned) the recorded one.
        let i = match inst.instance::<Instance>() {
            Ok(i) => Some(i),
            Err(_) if inst.instance.is_null() => recorded_instance()?,
            Err(e) => return Err(e),
        };
        let keep = match &i {
            Some(i) => {
                process::kill(i.process, i.stop_grace_ms)?;
                i.keep_workdir
            }
            None => LocalSection::parse(inst.resource.value()?)
                .map(|s| s.keep_workdir)
                .unwrap_or(false),
        };
        process::release(keep)
    }
}

occopus_sdk::export_resource_handler!(Local);
