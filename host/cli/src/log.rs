//! The CLI's log on stderr: warnings by default, `-v` adds info, `-vv` debug, `-q` keeps
//! errors only; `RUST_LOG` (`error`, `warn`, `info`, `debug`, `trace` or `off`) overrides
//! the flags. One line per event: `warning: message (field=value, ...)`.
//!
//! Must not: print plugin output (target `occopus::plugin`): a plugin's own log lines and
//! stderr may carry what it was given (credentials among them), and the host does not
//! redact them. A failed call's error message already quotes the stderr tail it needs.

use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Target prefix of plugin output, never printed.
const PLUGIN_TARGET: &str = "occopus::plugin";

/// The level the flags and `RUST_LOG` ask for.
pub fn level(quiet: bool, verbose: u8, rust_log: Option<&str>) -> LevelFilter {
    if let Some(v) = rust_log {
        match v.trim().to_ascii_lowercase().as_str() {
            "off" => return LevelFilter::OFF,
            "error" => return LevelFilter::ERROR,
            "warn" | "warning" => return LevelFilter::WARN,
            "info" => return LevelFilter::INFO,
            "debug" => return LevelFilter::DEBUG,
            "trace" => return LevelFilter::TRACE,
            // Per-target directives (`occopus_engine=debug`) are not understood: the
            // flags decide.
            _ => {}
        }
    }
    match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, _) => LevelFilter::DEBUG,
    }
}

/// Install the logger for the whole process.
pub fn install(max: LevelFilter) {
    // Only fails if a logger is installed already; the first one stays.
    let _ = tracing::subscriber::set_global_default(Stderr { max });
}

struct Stderr {
    max: LevelFilter,
}

/// Whether an event of `level` from `target` is printed at `max`.
fn wanted(level: Level, target: &str, max: LevelFilter) -> bool {
    level <= max && !target.starts_with(PLUGIN_TARGET)
}

impl Stderr {
    fn wants(&self, m: &Metadata<'_>) -> bool {
        wanted(*m.level(), m.target(), self.max)
    }
}

impl Subscriber for Stderr {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if self.wants(m) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.wants(m)
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        eprintln!("{}", line(event));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// `warning: message (field=value, ...)`.
fn line(event: &Event<'_>) -> String {
    let mut v = Line::default();
    event.record(&mut v);
    let level = match *event.metadata().level() {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let mut out = format!("{level}: {}", v.message);
    if !v.fields.is_empty() {
        let _ = write!(out, " ({})", v.fields.join(", "));
    }
    out
}

#[derive(Default)]
struct Line {
    message: String,
    fields: Vec<String>,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push(format!("{}={value}", field.name()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push(format!("{}={value:?}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_rust_log_choose_the_level() {
        assert_eq!(level(false, 0, None), LevelFilter::WARN);
        assert_eq!(level(false, 1, None), LevelFilter::INFO);
        assert_eq!(level(false, 3, None), LevelFilter::DEBUG);
        assert_eq!(level(true, 2, None), LevelFilter::ERROR);
        assert_eq!(level(true, 0, Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level(false, 0, Some("OFF")), LevelFilter::OFF);
        assert_eq!(
            level(false, 1, Some("occopus_engine=debug")),
            LevelFilter::INFO
        );
    }

    #[test]
    fn plugin_output_is_never_wanted() {
        let max = LevelFilter::TRACE;
        assert!(!wanted(Level::ERROR, "occopus::plugin", max));
        assert!(wanted(Level::WARN, "occopus_runtime", max));
        assert!(wanted(Level::WARN, "occopus::state", max));
        assert!(!wanted(Level::INFO, "occopus_runtime", LevelFilter::WARN));
        assert!(!wanted(Level::ERROR, "occopus_runtime", LevelFilter::OFF));
    }
}
