//! Time through the host's `clock` import. [`sleep_ms`] suspends the plugin without
//! blocking a host thread and counts against the call's time budget; never busy-wait.
//! [`poll_after_ms`] tells the host when to ask about an instance again.
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

/// From a resource handler's `state`: ask the host to poll this instance again in `ms`
/// milliseconds instead of after its own backoff (bounded by the host to 1 ms .. 60 s).
/// Use it when the plugin knows when the state will change, or to slow the host down in
/// front of a rate-limited API. Without the host (native tests) it does nothing.
pub fn poll_after_ms(ms: u64) {
    imp::poll_after_ms(ms);
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
    pub(super) fn poll_after_ms(ms: u64) {
        wit::poll_after(ms);
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
    pub(super) fn poll_after_ms(_ms: u64) {}
}
