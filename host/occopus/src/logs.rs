//! Node logs: backends that run nodes on this machine (`local`) write each instance's
//! output to `<state>/infras/<infra id>/nodes/<node id>/node.log`. Owns finding those
//! files for a node name or id; must not parse or rewrite them.

use crate::Error;
use occopus_model::InfraId;
use occopus_state::InfraState;
use std::path::{Path, PathBuf};

/// File name of an instance's log inside its working directory.
pub const LOG_FILE: &str = "node.log";

/// One instance's log file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeLog {
    /// Node name.
    pub node: String,
    /// Instance id.
    pub node_id: String,
    /// The file (it may not exist: backends on other machines keep no local log).
    pub path: PathBuf,
}

impl NodeLog {
    /// The last `n` lines of the log (empty if there is no file).
    pub fn tail(&self, n: usize) -> Result<String, Error> {
        let text = match std::fs::read(&self.path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => {
                return Err(Error::Io(format!(
                    "cannot read `{}`: {e}",
                    self.path.display()
                )));
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(n);
        let mut out = lines[from..].join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }
}

pub(crate) fn find(
    state: &InfraState,
    nodes_dir: &Path,
    id: &InfraId,
    node: &str,
) -> Result<Vec<NodeLog>, Error> {
    let found: Vec<NodeLog> = state
        .instances
        .iter()
        .filter(|i| i.node_name.as_str() == node || i.node_id.as_str() == node)
        .map(|i| NodeLog {
            node: i.node_name.to_string(),
            node_id: i.node_id.to_string(),
            path: nodes_dir.join(i.node_id.as_str()).join(LOG_FILE),
        })
        .collect();
    if found.is_empty() {
        let mut names: Vec<&str> = state
            .instances
            .iter()
            .map(|i| i.node_name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        return Err(Error::NotFound(format!(
            "infrastructure `{id}` has no node or instance `{node}` (nodes: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    Ok(found)
}
