//! `occopus:plugin/log`: plugin log lines go to `tracing` (target `occopus::plugin`) with
//! the plugin's name, the operation and the node. Bounded: lines are cut, fields are
//! capped, and a call may emit at most `max_log_lines_per_call` lines.
//!
//! Must not: trap, or let a chatty plugin flood the log.

use crate::bindings::host_api::occopus::plugin::log::{Host, Level};
use crate::convert::truncate;
use crate::state::PluginState;

const MAX_MESSAGE: usize = 4096;
const MAX_FIELDS: usize = 32;
const MAX_FIELD: usize = 512;

macro_rules! emit {
    ($lvl:expr, $plugin:expr, $op:expr, $node:expr, $fields:expr, $msg:expr) => {
        match $lvl {
            Level::Trace => tracing::trace!(target: "occopus::plugin", plugin = %$plugin, operation = $op, node = %$node, fields = %$fields, "{}", $msg),
            Level::Debug => tracing::debug!(target: "occopus::plugin", plugin = %$plugin, operation = $op, node = %$node, fields = %$fields, "{}", $msg),
            Level::Info => tracing::info!(target: "occopus::plugin", plugin = %$plugin, operation = $op, node = %$node, fields = %$fields, "{}", $msg),
            Level::Warn => tracing::warn!(target: "occopus::plugin", plugin = %$plugin, operation = $op, node = %$node, fields = %$fields, "{}", $msg),
            Level::Error => tracing::error!(target: "occopus::plugin", plugin = %$plugin, operation = $op, node = %$node, fields = %$fields, "{}", $msg),
        }
    };
}

impl Host for PluginState {
    fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let max = self.limits().max_log_lines_per_call;
        self.call.log_lines = self.call.log_lines.saturating_add(1);
        let node = self
            .call
            .node
            .as_ref()
            .map(|n| n.node_id.to_string())
            .unwrap_or_default();
        let op = self.call.operation;
        if self.call.log_lines > max {
            if self.call.log_lines == max + 1 {
                tracing::warn!(target: "occopus::plugin", plugin = %self.plugin(), operation = op, node = %node,
                    "more than {max} log lines in one call; dropping the rest of this call's lines");
            }
            return Ok(());
        }
        let message = truncate(message, MAX_MESSAGE);
        let fields = fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| format!("{}={}", truncate(k, MAX_FIELD), truncate(v, MAX_FIELD)))
            .collect::<Vec<_>>()
            .join(" ");
        emit!(level, self.plugin(), op, node, fields, message);
        Ok(())
    }
}
