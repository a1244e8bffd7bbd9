//! Node status values, as Occopus names them (`pending`, `ready`, `shutdown`, `unknown`,
//! `temp_failed`, `failed`), and how the parts of a node combine into one status.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Pending,
    Ready,
    Shutdown,
    Unknown,
    TempFailed,
    Failed,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Shutdown => "shutdown",
            Self::Unknown => "unknown",
            Self::TempFailed => "temp_failed",
            Self::Failed => "failed",
        }
    }

    /// Occopus's combination rule for resource, config-manager and health-check states:
    /// all ready → ready; any failed → failed; any shutdown → shutdown; any temp_failed →
    /// temp_failed; otherwise pending.
    pub fn combine(parts: &[NodeStatus]) -> NodeStatus {
        if parts.iter().all(|s| *s == Self::Ready) {
            Self::Ready
        } else if parts.contains(&Self::Failed) {
            Self::Failed
        } else if parts.contains(&Self::Shutdown) {
            Self::Shutdown
        } else if parts.contains(&Self::TempFailed) {
            Self::TempFailed
        } else {
            Self::Pending
        }
    }

    /// A status from which the node will not become ready by waiting.
    pub fn is_terminal_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Shutdown)
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::NodeStatus::*;
    use super::*;

    #[test]
    fn combination_follows_occopus() {
        assert_eq!(NodeStatus::combine(&[Ready, Ready, Ready]), Ready);
        assert_eq!(NodeStatus::combine(&[Ready, Failed, Shutdown]), Failed);
        assert_eq!(NodeStatus::combine(&[Shutdown, TempFailed]), Shutdown);
        assert_eq!(
            NodeStatus::combine(&[Ready, TempFailed, Pending]),
            TempFailed
        );
        assert_eq!(NodeStatus::combine(&[Ready, Unknown]), Pending);
        assert_eq!(
            serde_json::to_string(&TempFailed).unwrap(),
            "\"temp_failed\""
        );
    }
}
