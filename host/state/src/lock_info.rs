//! Who holds an infrastructure's lock, and the guard that releases it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The holder of a lock, written inside the lock so a second writer can say who is busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    /// The command line in short (`occopus build`).
    pub command: String,
    /// Unix milliseconds when the lock was taken.
    pub since_ms: u64,
}

impl LockHolder {
    /// This process, running `command`, from now.
    pub fn this_process(command: impl Into<String>) -> Self {
        Self {
            pid: std::process::id(),
            command: command.into(),
            since_ms: now_ms(),
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} (`{}`) since {}",
            self.pid,
            self.command,
            utc_time(self.since_ms)
        )
    }
}

/// An infrastructure lock; released when dropped. Stores put whatever keeps the lock alive
/// (an open locked file, a lease refresher) inside.
pub struct InfraLock {
    _inner: Box<dyn Send + Sync>,
    holder: LockHolder,
}

impl InfraLock {
    pub fn new(inner: Box<dyn Send + Sync>, holder: LockHolder) -> Self {
        Self {
            _inner: inner,
            holder,
        }
    }
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }
}

impl fmt::Debug for InfraLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfraLock")
            .field("holder", &self.holder)
            .finish()
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2024-05-01 12:34:56 UTC` for unix milliseconds.
pub(crate) fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(1_714_566_896_000), "2024-05-01 12:34:56 UTC");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
