//! `occopus:plugin/clock`: wall-clock time and a sleep that suspends the plugin without
//! blocking a thread. The sleep counts against the call's budget: a plugin sleeping past
//! it is stopped by the call's timeout like any other overrun.

use crate::bindings::host_api::occopus::plugin::clock::Host;
use crate::state::PluginState;
use std::time::Duration;

impl Host for PluginState {
    fn now_unix_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services().now_unix_ms())
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let services = self.services();
        self.call.in_host_call = Some("clock.sleep");
        services.sleep(Duration::from_millis(ms)).await;
        self.call.in_host_call = None;
        Ok(())
    }
}
