//! [`PluginError`]: the error every plugin operation returns, with the retry semantics of
//! the WIT `plugin-error` variant, constructors for the common cases, and the mapping of
//! HTTP status classes to retryable or permanent errors.
//!
//! Owns only error values; it never logs and never looks at credentials.

use std::fmt;

/// Result of a plugin operation.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// An error returned across the plugin boundary. The variant tells the engine whether a
/// retry can help: only [`Transient`](Self::Transient) (with backoff, honouring
/// `retry_after_ms`) and [`Timeout`](Self::Timeout) (once) are retried.
///
/// A panic is not an error: it traps the plugin instance, which fails the one operation
/// and makes the host discard the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The section or credentials were rejected. `path` is a JSON pointer into the
    /// section (`/image_id`, empty for the whole section). Permanent.
    InvalidConfig {
        /// JSON pointer of the offending field.
        path: String,
        /// What is wrong, ideally with a hint.
        message: String,
    },
    /// A host capability was refused by policy; the text names the missing grant.
    Denied(String),
    /// The object does not exist. Permanent.
    NotFound(String),
    /// A conflict or failed precondition. Permanent.
    Conflict(String),
    /// Throttling, a 5xx answer, a network hiccup: retried with backoff.
    Transient {
        /// What happened.
        message: String,
        /// Server-suggested delay before the retry.
        retry_after_ms: Option<u64>,
    },
    /// A host call ran out of time. Retried once.
    Timeout(String),
    /// Anything else. Permanent.
    Internal(String),
}

impl PluginError {
    /// A rejected field: `path` is a JSON pointer into the section (`""` for the whole
    /// section).
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            path: path.into(),
            message: message.into(),
        }
    }
    /// A retryable failure without a server-suggested delay.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after_ms: None,
        }
    }
    /// A retryable failure; retry no sooner than `retry_after_ms`.
    pub fn transient_after(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after_ms: Some(retry_after_ms),
        }
    }
    /// A capability the operator has not granted.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::Denied(message.into())
    }
    /// The object does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    /// A conflict or failed precondition.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }
    /// A host call ran out of time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::Timeout(message.into())
    }
    /// A permanent failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// Whether the engine retries this error.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Timeout(_))
    }

    /// Prefix the message with context (`"creating server: "`); the variant and any
    /// `retry_after_ms` are kept.
    pub fn context(self, what: impl fmt::Display) -> Self {
        match self {
            Self::InvalidConfig { path, message } => Self::InvalidConfig {
                path,
                message: format!("{what}: {message}"),
            },
            Self::Denied(m) => Self::Denied(format!("{what}: {m}")),
            Self::NotFound(m) => Self::NotFound(format!("{what}: {m}")),
            Self::Conflict(m) => Self::Conflict(format!("{what}: {m}")),
            Self::Transient {
                message,
                retry_after_ms,
            } => Self::Transient {
                message: format!("{what}: {message}"),
                retry_after_ms,
            },
            Self::Timeout(m) => Self::Timeout(format!("{what}: {m}")),
            Self::Internal(m) => Self::Internal(format!("{what}: {m}")),
        }
    }

    /// The error an HTTP answer of `status` stands for, or `None` for 1xx–3xx.
    ///
    /// 429 and 5xx are transient (honouring `retry_after_ms`, taken from a
    /// `Retry-After` header by [`crate::http::Response::error_for_status`]); 404 is
    /// not-found; 409 and 412 are conflicts; 400 and 422 reject the configuration; other
    /// 4xx answers (including 401/403: the cloud refused the credentials) are permanent.
    /// `what` names the request (`"GET https://…/servers"`), `detail` is the server's
    /// message.
    pub fn from_http_status(
        status: u16,
        what: &str,
        detail: &str,
        retry_after_ms: Option<u64>,
    ) -> Option<Self> {
        let text = if detail.is_empty() {
            format!("{what}: HTTP {status}")
        } else {
            format!("{what}: HTTP {status}: {detail}")
        };
        Some(match status {
            0..=399 => return None,
            429 | 500..=599 => Self::Transient {
                message: text,
                retry_after_ms,
            },
            404 | 410 => Self::NotFound(text),
            409 | 412 => Self::Conflict(text),
            400 | 422 => Self::invalid("", text),
            401 | 403 => Self::Internal(format!("{text} (credentials rejected)")),
            _ => Self::Internal(text),
        })
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { path, message } if path.is_empty() => {
                write!(f, "invalid configuration: {message}")
            }
            Self::InvalidConfig { path, message } => {
                write!(f, "invalid configuration at `{path}`: {message}")
            }
            Self::Denied(m) => write!(f, "denied: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Conflict(m) => write!(f, "conflict: {m}"),
            Self::Transient { message, .. } => f.write_str(message),
            Self::Timeout(m) => write!(f, "timed out: {m}"),
            Self::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_classes_map_to_retry_semantics() {
        assert_eq!(PluginError::from_http_status(204, "GET x", "", None), None);
        assert_eq!(PluginError::from_http_status(302, "GET x", "", None), None);
        let throttled = PluginError::from_http_status(429, "GET x", "slow down", Some(2000));
        assert_eq!(
            throttled,
            Some(PluginError::transient_after(
                "GET x: HTTP 429: slow down",
                2000
            ))
        );
        assert!(throttled.is_some_and(|e| e.is_retryable()));
        assert!(
            PluginError::from_http_status(503, "GET x", "", None).is_some_and(|e| e.is_retryable())
        );
        assert!(matches!(
            PluginError::from_http_status(404, "GET x", "", None),
            Some(PluginError::NotFound(_))
        ));
        assert!(matches!(
            PluginError::from_http_status(409, "GET x", "", None),
            Some(PluginError::Conflict(_))
        ));
        assert!(matches!(
            PluginError::from_http_status(400, "GET x", "bad", None),
            Some(PluginError::InvalidConfig { .. })
        ));
        let denied = PluginError::from_http_status(403, "GET x", "", None);
        assert!(denied.as_ref().is_some_and(|e| !e.is_retryable()));
        assert!(denied.is_some_and(|e| e.to_string().contains("credentials rejected")));
    }

    #[test]
    fn context_keeps_variant_and_retry_delay() {
        let e = PluginError::transient_after("busy", 5).context("creating node");
        assert_eq!(e, PluginError::transient_after("creating node: busy", 5));
        let e = PluginError::invalid("/a", "bad").context("section");
        assert_eq!(e.to_string(), "invalid configuration at `/a`: section: bad");
    }
}
