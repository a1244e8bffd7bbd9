//! Plain data types of the plugin contracts: node identity, addresses, statuses, health
//! reports. They mirror the WIT records but are ordinary Rust values (serde-enabled) so
//! that plugin logic can be unit-tested natively without a host.

use serde::{Deserialize, Serialize};

/// Identity of the node instance a call is about. `node_id` is the idempotency key: a
/// create retried with the same `node_id` must adopt what the first attempt made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeContext {
    /// Infrastructure id (a UUID).
    pub infra_id: String,
    /// Infrastructure name (`infra_name` of the description).
    pub infra_name: String,
    /// Node name in the description (`db`, `web`).
    pub node_name: String,
    /// Node instance id (a UUID), unique per instance.
    pub node_id: String,
    /// `user_id` of the description, if set.
    pub user_id: Option<String>,
}

/// Where an instance is. `primary` is what templates' `getip` returns and what health
/// checks probe; `private` is `getprivip`; `all` lists every known address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Addresses {
    /// The canonical address (`getip`).
    pub primary: Option<String>,
    /// The private address (`getprivip`).
    pub private: Option<String>,
    /// Every known address.
    pub all: Vec<String>,
}

impl Addresses {
    /// One address serving as primary, private and the only entry of `all`.
    pub fn single(address: impl Into<String>) -> Self {
        let a = address.into();
        Self {
            primary: Some(a.clone()),
            private: Some(a.clone()),
            all: vec![a],
        }
    }
    /// No address known (yet).
    pub fn none() -> Self {
        Self::default()
    }
}

/// Occopus node status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Starting.
    Pending,
    /// Running and usable.
    Ready,
    /// Stopped or gone.
    Shutdown,
    /// Unknown to the backend.
    Unknown,
    /// Failed, but may recover.
    TempFailed,
    /// Failed for good.
    Failed,
}

/// A resource's own view of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The status.
    pub status: NodeStatus,
    /// Why (the cloud's state reason, an exit code and log tail…).
    pub message: Option<String>,
}

impl ResourceState {
    /// `status` without a message.
    pub fn new(status: NodeStatus) -> Self {
        Self {
            status,
            message: None,
        }
    }
    /// `status` with a message.
    pub fn with_message(status: NodeStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
        }
    }
    /// Running and usable.
    pub fn ready() -> Self {
        Self::new(NodeStatus::Ready)
    }
    /// Still starting.
    pub fn pending(message: impl Into<String>) -> Self {
        Self::with_message(NodeStatus::Pending, message)
    }
    /// Failed for good, with the reason.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::with_message(NodeStatus::Failed, message)
    }
}

/// Verdict of one health check run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every check passed.
    Ready,
    /// Not yet: the engine polls again with backoff until the section's timeout.
    Pending,
    /// Definitely broken; no point in waiting.
    Failed,
}

/// Outcome of one primitive check (`ping 10.0.0.5`, `port 8080`, `url http://…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Latency, status code or the error text.
    pub detail: String,
}

impl CheckOutcome {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }
    /// A failed check.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The result of a health check run: a verdict and one outcome per primitive tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// One outcome per primitive check tried, in order.
    pub checks: Vec<CheckOutcome>,
}

impl HealthReport {
    /// `Ready` if every outcome passed, else `Pending`.
    pub fn from_checks(checks: Vec<CheckOutcome>) -> Self {
        let status = if checks.iter().all(|c| c.ok) {
            HealthStatus::Ready
        } else {
            HealthStatus::Pending
        };
        Self { status, checks }
    }
}
