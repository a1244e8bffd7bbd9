//! Network probes performed by the host for health checks: ICMP ping (needs the `ping`
//! capability) and TCP connect. Outside the plugin host they return an internal error.

use crate::error::Result;

/// Outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether the target answered.
    pub ok: bool,
    /// Round-trip or connect time.
    pub latency_ms: u64,
    /// Why it failed (refused, timed out, unreachable).
    pub error: Option<String>,
}

/// One ICMP echo to `host`.
pub fn ping(host: &str, timeout_ms: u64) -> Result<ProbeResult> {
    imp::ping(host, timeout_ms)
}

/// TCP connect to `host:port`, then close.
pub fn tcp_connect(host: &str, port: u16, timeout_ms: u64) -> Result<ProbeResult> {
    imp::tcp_connect(host, port, timeout_ms)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::ProbeResult;
    use crate::bindings::host::occopus::plugin::probe as wit;
    use crate::error::Result;

    fn convert(r: wit::ProbeResult) -> ProbeResult {
        ProbeResult {
            ok: r.ok,
            latency_ms: r.latency_ms,
            error: r.error,
        }
    }
    pub(super) fn ping(host: &str, timeout_ms: u64) -> Result<ProbeResult> {
        Ok(convert(wit::ping(host, timeout_ms)?))
    }
    pub(super) fn tcp_connect(host: &str, port: u16, timeout_ms: u64) -> Result<ProbeResult> {
        Ok(convert(wit::tcp_connect(host, port, timeout_ms)?))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::ProbeResult;
    use crate::error::{PluginError, Result};

    fn unavailable() -> PluginError {
        PluginError::internal("the `probe` host import is only available inside the plugin host")
    }
    pub(super) fn ping(_host: &str, _timeout_ms: u64) -> Result<ProbeResult> {
        Err(unavailable())
    }
    pub(super) fn tcp_connect(_host: &str, _port: u16, _timeout_ms: u64) -> Result<ProbeResult> {
        Err(unavailable())
    }
}
