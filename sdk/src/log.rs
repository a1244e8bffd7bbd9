//! Structured logging through the host's `log` import: lines reach the orchestrator's log
//! with the plugin's name attached. Never log credentials.
//!
//! Outside the plugin host (native unit tests), lines go to stderr instead.

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something looks wrong but the operation goes on.
    Warn,
    /// An operation failed.
    Error,
}

/// Log `message` with key/value `fields`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    imp::log(level, message, fields);
}

/// Log at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref(), &[]);
}
/// Log at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref(), &[]);
}
/// Log at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref(), &[]);
}
/// Log at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref(), &[]);
}
/// Log at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref(), &[]);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::bindings::host::occopus::plugin::log as wit;

    pub(super) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        wit::log(level, message, &fields);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;

    pub(super) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        eprintln!("[{level:?}] {message}{fields}");
    }
}
