//! `occopus:plugin/clock`: wall-clock time and a sleep that suspends the plugin without
//! blocking a thread. The sleep counts against the call's budget: a plugin sleeping past
//! it is stopped by the call's timeout like any other overrun. `poll-after` records the
//! plugin's hint for the next `state` poll in the call's state (see the adapter).

use crate::bindings::host_api::occopus::plugin::clock::Host;
use crate::state::PluginState;
use std::time::Duration;

/// Upper bound of a `poll-after` hint, milliseconds.
pub(crate) const POLL_AFTER_MAX_MS: u64 = 60_000;

impl Host for PluginState {
    fn now_unix_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services().now_unix_ms())
    }

    fn poll_after(&mut self, ms: u64) -> wasmtime::Result<()> {
        self.call.poll_after_ms = Some(ms.clamp(1, POLL_AFTER_MAX_MS));
        Ok(())
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let services = self.services();
        self.call.in_host_call = Some("clock.sleep");
        services.sleep(Duration::from_millis(ms)).await;
        self.call.in_host_call = None;
        Ok(())
    }
}
