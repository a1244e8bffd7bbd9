//! Time through the host's `clock` import. [`sleep_ms`] suspends the plugin without
//! blocking a host thread and counts against the call's time budget; never busy-wait.
//!
//! Outside the plugin host (native unit tests) these use the system clock and
//! `std::thread::sleep`.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    imp::now_ms()
}

/// Suspend for `ms` milliseconds. `0` returns at once without a host call.
pub fn sleep_ms(ms: u64) {
    if ms > 0 {
        imp::sleep_ms(ms);
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::host::occopus::plugin::clock as wit;

    pub(super) fn now_ms() -> u64 {
        wit::now_unix_ms()
    }
    pub(super) fn sleep_ms(ms: u64) {
        wit::sleep(ms);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub(super) fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub(super) fn sleep_ms(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}
