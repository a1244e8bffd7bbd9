//! Conversions between the engine's types (`occopus-model`) and the generated WIT types.
//!
//! Must not: log or format credentials (the generated records derive `Debug` with every
//! field; never print them).

use crate::bindings::host_api::occopus::plugin::types as wit;
use occopus_model::instance::Addresses;
use occopus_model::plugin::{NodeContext, PluginError};
use occopus_model::status::NodeStatus;

/// A model error as the guest sees it.
pub(crate) fn error_to_wit(e: PluginError) -> wit::PluginError {
    match e {
        PluginError::InvalidConfig { path, message } => {
            wit::PluginError::InvalidConfig(wit::FieldError { path, message })
        }
        PluginError::Denied(m) => wit::PluginError::Denied(m),
        PluginError::NotFound(m) => wit::PluginError::NotFound(m),
        PluginError::Conflict(m) => wit::PluginError::Conflict(m),
        PluginError::Transient {
            message,
            retry_after_ms,
        } => wit::PluginError::Transient(wit::RetryInfo {
            message,
            retry_after_ms,
        }),
        PluginError::Timeout(m) => wit::PluginError::Timeout(m),
        PluginError::Internal(m) => wit::PluginError::Internal(m),
        PluginError::Crashed {
            plugin,
            operation,
            cause,
        } => wit::PluginError::Internal(format!(
            "plugin `{plugin}` failed during `{operation}`: {cause}"
        )),
    }
}

/// A guest's error as the engine sees it; texts are cut to `max` bytes.
pub(crate) fn error_from_wit(e: wit::PluginError, max: usize) -> PluginError {
    let t = |s: String| truncate(s, max);
    match e {
        wit::PluginError::InvalidConfig(f) => PluginError::InvalidConfig {
            path: t(f.path),
            message: t(f.message),
        },
        wit::PluginError::Denied(m) => PluginError::Denied(t(m)),
        wit::PluginError::NotFound(m) => PluginError::NotFound(t(m)),
        wit::PluginError::Conflict(m) => PluginError::Conflict(t(m)),
        wit::PluginError::Transient(r) => PluginError::Transient {
            message: t(r.message),
            retry_after_ms: r.retry_after_ms,
        },
        wit::PluginError::Timeout(m) => PluginError::Timeout(t(m)),
        wit::PluginError::Internal(m) => PluginError::Internal(t(m)),
    }
}

/// Cut `s` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let total = s.len();
    s.truncate(end);
    s.push_str(&format!("… ({total} bytes, cut)"));
    s
}

pub(crate) fn node_to_wit(n: &NodeContext) -> wit::NodeContext {
    wit::NodeContext {
        infra_id: n.infra_id.to_string(),
        infra_name: n.infra_name.clone(),
        node_name: n.node_name.to_string(),
        node_id: n.node_id.to_string(),
        user_id: n.user_id.clone(),
    }
}

pub(crate) fn addresses_to_wit(a: &Addresses) -> wit::Addresses {
    wit::Addresses {
        primary: a.primary.clone(),
        private: a.private.clone(),
        all: a.all.clone(),
    }
}

pub(crate) fn addresses_from_wit(a: wit::Addresses) -> Addresses {
    Addresses {
        primary: a.primary,
        private: a.private,
        all: a.all,
    }
}

pub(crate) fn status_from_wit(s: wit::NodeStatus) -> NodeStatus {
    match s {
        wit::NodeStatus::Pending => NodeStatus::Pending,
        wit::NodeStatus::Ready => NodeStatus::Ready,
        wit::NodeStatus::Shutdown => NodeStatus::Shutdown,
        wit::NodeStatus::Unknown => NodeStatus::Unknown,
        wit::NodeStatus::TempFailed => NodeStatus::TempFailed,
        wit::NodeStatus::Failed => NodeStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc".into(), 5), "abc");
        let t = truncate("ééé".into(), 3);
        assert!(t.starts_with("é…"), "{t}");
        assert!(t.contains("6 bytes"), "{t}");
    }

    #[test]
    fn errors_round_trip() {
        let e = PluginError::Transient {
            message: "slow down".into(),
            retry_after_ms: Some(5),
        };
        assert_eq!(error_from_wit(error_to_wit(e.clone()), 100), e);
        let e = PluginError::invalid("/a", "bad");
        assert_eq!(error_from_wit(error_to_wit(e.clone()), 100), e);
    }
}
