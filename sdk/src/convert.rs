//! Conversions between the generated WIT types and the SDK's own types. Used by the
//! export adapters and the host-import wrappers; nothing here calls the host.

use crate::bindings::host::occopus::plugin::types as wit;
use crate::error::PluginError;
use crate::metadata::Metadata;
use crate::types::{Addresses, NodeContext, NodeStatus};

impl From<wit::PluginError> for PluginError {
    fn from(e: wit::PluginError) -> Self {
        match e {
            wit::PluginError::InvalidConfig(f) => Self::InvalidConfig {
                path: f.path,
                message: f.message,
            },
            wit::PluginError::Denied(m) => Self::Denied(m),
            wit::PluginError::NotFound(m) => Self::NotFound(m),
            wit::PluginError::Conflict(m) => Self::Conflict(m),
            wit::PluginError::Transient(r) => Self::Transient {
                message: r.message,
                retry_after_ms: r.retry_after_ms,
            },
            wit::PluginError::Timeout(m) => Self::Timeout(m),
            wit::PluginError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<PluginError> for wit::PluginError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::InvalidConfig { path, message } => {
                Self::InvalidConfig(wit::FieldError { path, message })
            }
            PluginError::Denied(m) => Self::Denied(m),
            PluginError::NotFound(m) => Self::NotFound(m),
            PluginError::Conflict(m) => Self::Conflict(m),
            PluginError::Transient {
                message,
                retry_after_ms,
            } => Self::Transient(wit::RetryInfo {
                message,
                retry_after_ms,
            }),
            PluginError::Timeout(m) => Self::Timeout(m),
            PluginError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<wit::NodeContext> for NodeContext {
    fn from(n: wit::NodeContext) -> Self {
        Self {
            infra_id: n.infra_id,
            infra_name: n.infra_name,
            node_name: n.node_name,
            node_id: n.node_id,
            user_id: n.user_id,
        }
    }
}

impl From<wit::Addresses> for Addresses {
    fn from(a: wit::Addresses) -> Self {
        Self {
            primary: a.primary,
            private: a.private,
            all: a.all,
        }
    }
}

impl From<Addresses> for wit::Addresses {
    fn from(a: Addresses) -> Self {
        Self {
            primary: a.primary,
            private: a.private,
            all: a.all,
        }
    }
}

impl From<NodeStatus> for wit::NodeStatus {
    fn from(s: NodeStatus) -> Self {
        match s {
            NodeStatus::Pending => Self::Pending,
            NodeStatus::Ready => Self::Ready,
            NodeStatus::Shutdown => Self::Shutdown,
            NodeStatus::Unknown => Self::Unknown,
            NodeStatus::TempFailed => Self::TempFailed,
            NodeStatus::Failed => Self::Failed,
        }
    }
}

impl From<Metadata> for wit::PluginMetadata {
    fn from(m: Metadata) -> Self {
        Self {
            name: m.name,
            version: m.version,
            description: m.description,
            types: m
                .types
                .into_iter()
                .map(|t| wit::TypeInfo {
                    name: t.name,
                    schema: t.schema.to_string(),
                })
                .collect(),
            capabilities: m.capabilities,
        }
    }
}
