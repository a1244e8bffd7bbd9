//! Knobs of the engine ([`EngineOptions`], fixed per engine) and of one operation
//! ([`BuildOptions`], [`DestroyOptions`]).

use occopus_model::InfraId;
use std::time::Duration;

/// Exponential backoff: `first`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before try number `attempt + 1` (attempt 0 waits `first`).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// How transient plugin errors (`Transient`, `Timeout`) are retried. Other errors are
/// permanent and never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in total, the first included.
    pub attempts: u32,
    /// Delay between tries; a plugin's `retry_after_ms` is honoured when longer.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            backoff: Backoff {
                first: Duration::from_millis(200),
                max: Duration::from_secs(10),
            },
        }
    }
}

/// Options fixed for the life of an [`crate::Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// At most this many instances are being created (from intent until ready) or dropped
    /// at once, over the whole infrastructure.
    pub parallelism: usize,
    /// An instance not created *and* ready this long after it started fails.
    pub create_deadline: Duration,
    /// Polling of resource state, config-manager state and health checks while waiting
    /// for an instance: first poll fast, doubling, capped.
    pub health_poll: Backoff,
    /// Retries of transient plugin errors.
    pub retry: RetryPolicy,
    /// Template rendering (strict/lenient undefined names, `cmd()`).
    pub template: occopus_template::Options,
    /// How long `build`/`destroy` wait for another writer's lock before giving up.
    pub lock_wait: Duration,
    /// The program the lock file names as its holder, followed by the operation
    /// (`occopus` gives `occopus build`).
    pub command: String,
    /// Events buffered per subscriber before a slow subscriber starts losing them.
    pub event_capacity: usize,
    /// Stage dependents: once every dependency of a node has started, prepare its
    /// instances' creates and let their plugins run up to their first effect, so that at
    /// the dependencies' readiness only the rest is left (see `docs/engine.md`).
    pub stage: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            parallelism: 64,
            create_deadline: Duration::from_secs(30 * 60),
            health_poll: Backoff {
                first: Duration::from_millis(25),
                max: Duration::from_secs(2),
            },
            retry: RetryPolicy::default(),
            template: occopus_template::Options::default(),
            lock_wait: Duration::ZERO,
            command: "occopus".into(),
            event_capacity: 4096,
            stage: true,
        }
    }
}

/// Options of one `build`.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build into this infrastructure: an update if it exists, a new infrastructure with
    /// this id if not. `None`: a new infrastructure with a fresh UUID v4.
    pub infra_id: Option<InfraId>,
    /// On failure keep what was created (instead of rolling it back).
    pub keep_on_failure: bool,
    /// Recorded in the state for messages.
    pub description_path: Option<String>,
    /// Overrides [`EngineOptions::parallelism`].
    pub parallelism: Option<usize>,
    /// Overrides [`EngineOptions::create_deadline`].
    pub create_deadline: Option<Duration>,
}

/// Options of one `destroy`.
#[derive(Debug, Clone, Default)]
pub struct DestroyOptions {
    /// Destroying an unknown (or already destroyed) infrastructure succeeds with an empty
    /// report instead of failing with [`crate::EngineError::NotFound`].
    pub missing_ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_secs(2),
        };
        let d: Vec<u128> = (0..9).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(d, [20, 40, 80, 160, 320, 640, 1280, 2000, 2000]);
        assert_eq!(b.delay(200), Duration::from_secs(2));
    }
}
