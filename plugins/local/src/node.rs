//! One node instance: the plan made from the section and the contextualisation (files,
//! steps, service, environment), the instance data kept between calls, and the mapping of
//! the process's fate to a resource state. Pure: no host calls.

use crate::cloudinit::{self, FileSpec};
use crate::config::{Command, LocalSection, env_from_list, env_from_map};
use crate::script;
use occopus_sdk::process::{ProcessHandle, ProcessStatus};
use occopus_sdk::{NodeContext, PluginError, ResourceState, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The node's log file, relative to the node directory (what `occopus logs` shows).
pub const LOG_FILE: &str = "node.log";
/// The start script, relative to the node directory.
pub const SCRIPT_FILE: &str = ".occopus-run.sh";
/// Instance data, kept in the node directory so `find` can adopt the process.
pub const INSTANCE_FILE: &str = ".occopus-instance.json";
/// How much of the log a failure message quotes.
pub const TAIL_BYTES: u64 = 2048;
const TAIL_LINES: usize = 15;

/// Everything `create` does, decided before any side effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub files: Vec<FileSpec>,
    pub bootcmd: Vec<Command>,
    pub runcmd: Vec<Command>,
    pub service: Option<Command>,
    /// User environment (section `env` over contextualisation `env`).
    pub env: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// The start script.
    pub fn script(&self) -> String {
        script::build(&self.bootcmd, &self.runcmd, self.service.as_ref())
    }
}

/// Make the plan. `context` is the rendered cloud-init user data; `attributes` the
/// rendered contextualisation attributes, whose `command`/`env` (docker's form, or a
/// `basic` contextualisation's attributes) are used only when there is no user data.
pub fn plan(section: &LocalSection, context: Option<&str>, attributes: &Value) -> Result<Plan> {
    let mut plan = Plan {
        files: Vec::new(),
        bootcmd: Vec::new(),
        runcmd: Vec::new(),
        service: section.command.clone(),
        env: Vec::new(),
        warnings: Vec::new(),
    };
    match context {
        Some(text) => {
            let setup = cloudinit::parse_user_data(text)?;
            plan.files = setup.files;
            plan.bootcmd = setup.bootcmd;
            plan.runcmd = setup.runcmd;
            plan.warnings = setup.warnings;
        }
        None => {
            if let Value::Object(m) = attributes {
                match m.get("env") {
                    Some(Value::Array(items)) => {
                        plan.env = env_from_list(items, "/contextualisation/env")?
                    }
                    Some(Value::Object(map)) => {
                        plan.env = env_from_map(map, "/contextualisation/env")?
                    }
                    _ => {}
                }
                if let Some(c) = m.get("command").filter(|c| !c.is_null()) {
                    let c = Command::from_value(c, "/contextualisation/command")?;
                    if plan.service.is_some() {
                        plan.warnings.push(
                            "both the resource and the contextualisation give a `command`; the resource's is used".into(),
                        );
                    } else {
                        plan.service = Some(c);
                    }
                }
            }
        }
    }
    for (k, v) in &section.env {
        plan.env.retain(|(k2, _)| k2 != k);
        plan.env.push((k.clone(), v.clone()));
    }
    Ok(plan)
}

/// The environment of the node's processes: identity and address first, then the user's
/// (which may override them).
pub fn environment(
    node: &NodeContext,
    address: &str,
    workdir: &str,
    user: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_string(), workdir.to_string()),
        ("OCCOPUS_ADDRESS".to_string(), address.to_string()),
        ("OCCOPUS_NODE_ID".to_string(), node.node_id.clone()),
        ("OCCOPUS_NODE_NAME".to_string(), node.node_name.clone()),
        ("OCCOPUS_INFRA_ID".to_string(), node.infra_id.clone()),
        ("OCCOPUS_INFRA_NAME".to_string(), node.infra_name.clone()),
    ];
    for (k, v) in user {
        env.retain(|(k2, _)| k2 != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Instance data: what later calls need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The node's process group leader.
    pub process: ProcessHandle,
    /// The node's loopback address.
    pub address: String,
    /// The node directory (absolute, for messages).
    pub workdir: String,
    /// Whether a service command runs after setup.
    pub service: bool,
    pub keep_workdir: bool,
    pub stop_grace_ms: u64,
    pub setup_timeout_ms: u64,
    /// Host clock at creation, ms since the epoch.
    pub created_ms: u64,
}

impl Instance {
    pub fn parse(v: &Value) -> Result<Self> {
        occopus_sdk::request::parse_instance(v)
    }
    pub fn to_value(&self) -> Result<Value> {
        serde_json::to_value(self)
            .map_err(|e| PluginError::internal(format!("local: cannot encode instance data: {e}")))
    }
}

/// The last lines of a log tail, for messages.
pub fn tail_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // The first line of a byte-limited tail is probably cut.
    if bytes.len() as u64 >= TAIL_BYTES && lines.len() > 1 {
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].join("\n")
}

/// The resource state from the process's status and the phase file. `tail` reads the
/// log's end (only called for failures).
pub fn state(
    inst: &Instance,
    status: ProcessStatus,
    phase: Option<&str>,
    now_ms: u64,
    tail: impl FnOnce() -> String,
) -> ResourceState {
    let phase = phase.map(str::trim).filter(|p| !p.is_empty());
    let ready = phase == Some(script::READY);
    let what = if ready {
        if inst.service {
            "the service".to_string()
        } else {
            "the node's idle process".to_string()
        }
    } else {
        match phase {
            Some(p) => format!("setup step {p}"),
            None => "the start script".to_string(),
        }
    };
    let with_tail = |msg: String| {
        let t = tail();
        if t.is_empty() {
            format!("{msg}; {LOG_FILE} is empty")
        } else {
            format!("{msg}; last lines of {LOG_FILE}:\n{t}")
        }
    };
    match status {
        ProcessStatus::Running if ready => ResourceState::ready(),
        ProcessStatus::Running => {
            let elapsed = now_ms.saturating_sub(inst.created_ms);
            if elapsed > inst.setup_timeout_ms {
                ResourceState::failed(with_tail(format!(
                    "setup did not finish within {} s (still at {})",
                    inst.setup_timeout_ms / 1000,
                    phase.unwrap_or("the start")
                )))
            } else {
                ResourceState::pending(match phase {
                    Some(p) => format!("setup: {p}"),
                    None => "starting".to_string(),
                })
            }
        }
        ProcessStatus::Exited(0) => ResourceState::with_message(
            occopus_sdk::NodeStatus::Shutdown,
            format!("{what} exited with code 0"),
        ),
        ProcessStatus::Exited(c) => {
            ResourceState::failed(with_tail(format!("{what} exited with code {c}")))
        }
        // Killed from outside (by a person, the OOM killer, a shutdown): the node is gone
        // like a terminated VM, not broken by its own doing.
        ProcessStatus::Signalled(s) => ResourceState::with_message(
            occopus_sdk::NodeStatus::Shutdown,
            with_tail(format!("{what} was killed by signal {s}")),
        ),
        ProcessStatus::Gone => ResourceState::with_message(
            occopus_sdk::NodeStatus::Shutdown,
            "the node's process is gone",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus_sdk::NodeStatus;
    use serde_json::json;

    fn section(v: Value) -> LocalSection {
        LocalSection::parse(&v).unwrap()
    }

    fn inst(service: bool) -> Instance {
        Instance {
            process: ProcessHandle {
                pid: 10,
                start_time: 20,
            },
            address: "127.0.0.2".into(),
            workdir: "/w".into(),
            service,
            keep_workdir: false,
            stop_grace_ms: 5000,
            setup_timeout_ms: 10_000,
            created_ms: 1_000,
        }
    }

    #[test]
    fn cloud_config_plan_with_a_resource_command() {
        let s = section(json!({"type": "local", "command": "python3 app.py", "env": {"A": "1"}}));
        let p = plan(
            &s,
            Some("#cloud-config\nruncmd: [echo a]\nusers: []\n"),
            &json!({"command": "ignored for cloudinit"}),
        )
        .unwrap();
        assert_eq!(p.service, Some(Command::Shell("python3 app.py".into())));
        assert_eq!(p.runcmd, vec![Command::Shell("echo a".into())]);
        assert_eq!(p.env, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(p.warnings.len(), 1);
        let script = p.script();
        assert!(
            script.contains("step 'runcmd[0]' sh -c 'echo a'"),
            "{script}"
        );
        assert!(script.contains("sh -c 'python3 app.py' &"), "{script}");
    }

    #[test]
    fn docker_style_attributes_without_user_data() {
        let s = section(json!({"type": "local", "env": {"B": "section"}}));
        let p = plan(
            &s,
            None,
            &json!({"env": ["A=1", "B=ctx"], "command": ["sleep", "5"]}),
        )
        .unwrap();
        assert_eq!(
            p.service,
            Some(Command::Argv(vec!["sleep".into(), "5".into()]))
        );
        assert_eq!(
            p.env,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "section".to_string())
            ]
        );
        let p = plan(&s, None, &Value::Null).unwrap();
        assert_eq!(p.service, None);
        let e = plan(&s, None, &json!({"env": ["bad"]})).unwrap_err();
        assert!(
            matches!(&e, PluginError::InvalidConfig { path, .. } if path == "/contextualisation/env/0")
        );
    }

    #[test]
    fn environment_order_and_override() {
        let node = NodeContext {
            infra_id: "i".into(),
            infra_name: "demo".into(),
            node_name: "web".into(),
            node_id: "n".into(),
            user_id: None,
        };
        let env = environment(&node, "127.0.0.9", "/w", &[("HOME".into(), "/h".into())]);
        let get = |k: &str| env.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
        assert_eq!(get("OCCOPUS_ADDRESS"), Some("127.0.0.9"));
        assert_eq!(get("OCCOPUS_NODE_NAME"), Some("web"));
        assert_eq!(get("HOME"), Some("/h"));
        assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
    }

    #[test]
    fn states() {
        let i = inst(true);
        let no_tail = || panic!("tail read for a healthy node");
        assert_eq!(
            state(&i, ProcessStatus::Running, Some("ready\n"), 2_000, no_tail),
            ResourceState::ready()
        );
        assert_eq!(
            state(
                &i,
                ProcessStatus::Running,
                Some("runcmd[1]"),
                2_000,
                no_tail
            ),
            ResourceState::pending("setup: runcmd[1]")
        );
        assert_eq!(
            state(&i, ProcessStatus::Running, None, 2_000, no_tail).status,
            NodeStatus::Pending
        );
        let st = state(
            &i,
            ProcessStatus::Running,
            Some("runcmd[0]"),
            20_000,
            || "hang".into(),
        );
        assert_eq!(st.status, NodeStatus::Failed);
        assert!(
            st.message
                .as_deref()
                .unwrap()
                .starts_with("setup did not finish within 10 s (still at runcmd[0])"),
            "{st:?}"
        );
        let st = state(&i, ProcessStatus::Exited(3), Some("ready"), 2_000, || {
            "Traceback\nboom".into()
        });
        assert_eq!(st.status, NodeStatus::Failed);
        assert_eq!(
            st.message.as_deref(),
            Some("the service exited with code 3; last lines of node.log:\nTraceback\nboom")
        );
        let st = state(
            &i,
            ProcessStatus::Exited(2),
            Some("bootcmd[0]"),
            2_000,
            String::new,
        );
        assert_eq!(
            st.message.as_deref(),
            Some("setup step bootcmd[0] exited with code 2; node.log is empty")
        );
        let st = state(&i, ProcessStatus::Exited(0), Some("ready"), 2_000, no_tail);
        assert_eq!(st.status, NodeStatus::Shutdown);
        let st = state(
            &i,
            ProcessStatus::Signalled(9),
            Some("ready"),
            2_000,
            String::new,
        );
        assert_eq!(st.status, NodeStatus::Shutdown);
        assert!(st.message.unwrap().contains("killed by signal 9"));
        assert_eq!(
            state(&i, ProcessStatus::Gone, None, 2_000, no_tail).status,
            NodeStatus::Shutdown
        );
        assert_eq!(
            state(
                &inst(false),
                ProcessStatus::Running,
                Some("ready"),
                99_000,
                no_tail
            ),
            ResourceState::ready()
        );
    }

    #[test]
    fn tails_keep_whole_lines() {
        assert_eq!(tail_lines(b"a\nb\n"), "a\nb");
        let mut long = vec![b'x'; TAIL_BYTES as usize - 4];
        long.extend_from_slice(b"\nend");
        assert_eq!(tail_lines(&long), "end");
        let many: String = (0..40).map(|i| format!("{i}\n")).collect();
        assert_eq!(tail_lines(many.as_bytes()).lines().count(), TAIL_LINES);
    }

    #[test]
    fn instance_data_round_trips() {
        let i = inst(true);
        assert_eq!(Instance::parse(&i.to_value().unwrap()).unwrap(), i);
        assert!(matches!(
            Instance::parse(&json!({"pid": 1})),
            Err(PluginError::Internal(_))
        ));
    }
}
