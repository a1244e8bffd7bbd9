//! The `sim` resource section: its serde type, the checks beyond its JSON Schema, and
//! the schema itself. Pure: no host calls.

use occopus_sdk::{PluginError, Result};
use serde::Deserialize;
use serde_json::{Value, json};

/// A latency: a fixed number of milliseconds or an inclusive `[min, max]` range, from
/// which each node gets its own deterministic value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always this many milliseconds.
    Fixed(u64),
    /// Between `min` and `max` milliseconds inclusive.
    Range([u64; 2]),
}

/// Hand-written rather than `#[serde(untagged)]`, which buffers input and costs tens of
/// kilobytes of component size.
impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Latency;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("milliseconds (a non-negative integer) or a [min, max] pair")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Latency, E> {
                Ok(Latency::Fixed(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Latency, A::Error> {
                use serde::de::Error;
                let min = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let max = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                if seq.next_element::<u64>()?.is_some() {
                    return Err(A::Error::invalid_length(3, &self));
                }
                Ok(Latency::Range([min, max]))
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::Fixed(0)
    }
}

/// Which addresses simulated instances get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Primary address in 127.0.0.0/8 (answers a real ping on Linux, so the default
    /// `basic` health check passes); private address a fake 10.x.y.z.
    #[default]
    Loopback,
    /// Primary and private addresses both fake 10.x.y.z, like a cloud VM. Nothing
    /// answers there: health checks of such nodes must not probe (`ping: false`).
    Private,
}

/// The rendered `resource` section of type `sim`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// Always `sim`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Latency of `create`.
    #[serde(default)]
    pub create_ms: Latency,
    /// Time from creation until `state` says ready.
    #[serde(default)]
    pub ready_after_ms: Latency,
    /// Latency of `destroy`.
    #[serde(default)]
    pub destroy_ms: Latency,
    /// Probability (0..1) that `create` fails permanently for a node.
    #[serde(default)]
    pub fail_create: f64,
    /// Probability (0..1) that an instance ends `failed` instead of ready.
    #[serde(default)]
    pub fail_state: f64,
    /// Node names whose `create` always fails.
    #[serde(default)]
    pub fail_nodes: Vec<String>,
    /// Fail the Nth `create` call (1-based) this plugin instance sees.
    #[serde(default)]
    pub fail_on_call: Option<u64>,
    /// Transient errors returned before a node's `create` succeeds.
    #[serde(default)]
    pub transient_failures: u32,
    /// Seed of every random choice (combined with the node id).
    #[serde(default)]
    pub seed: u64,
    /// Whether `find` reports an instance for any node (deterministically rebuilt).
    #[serde(default)]
    pub adopt: bool,
    /// Address scheme.
    #[serde(default)]
    pub network: Network,
    /// Simulated price per hour; enables `cost`.
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
}

impl SimSection {
    /// Parse and check a section.
    pub fn parse(section: &Value) -> Result<Self> {
        let s: Self = occopus_sdk::parse_section(section)?;
        s.check()?;
        Ok(s)
    }

    /// Checks a JSON Schema cannot express: ordered ranges.
    fn check(&self) -> Result<()> {
        for (field, latency) in [
            ("create_ms", self.create_ms),
            ("ready_after_ms", self.ready_after_ms),
            ("destroy_ms", self.destroy_ms),
        ] {
            if let Latency::Range([min, max]) = latency
                && min > max
            {
                return Err(PluginError::invalid(
                    format!("/{field}"),
                    format!("range [{min}, {max}] has min > max; write [{max}, {min}]"),
                ));
            }
        }
        for (field, p) in [
            ("fail_create", self.fail_create),
            ("fail_state", self.fail_state),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(PluginError::invalid(
                    format!("/{field}"),
                    format!("{} is not a probability between 0 and 1", Value::from(p)),
                ));
            }
        }
        if self.fail_on_call == Some(0) {
            return Err(PluginError::invalid(
                "/fail_on_call",
                "calls are counted from 1; 0 would never fail",
            ));
        }
        if let Some(c) = self.cost_per_hour
            && !(c.is_finite() && c >= 0.0)
        {
            return Err(PluginError::invalid(
                "/cost_per_hour",
                "must be a non-negative number",
            ));
        }
        Ok(())
    }
}

fn latency_schema(what: &str) -> Value {
    json!({
        "description": format!("{what}: milliseconds, or an inclusive [min, max] range from which each node draws its own value (deterministic per seed and node id). Default 0."),
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
        ]
    })
}

fn probability_schema(what: &str) -> Value {
    json!({"type": "number", "minimum": 0, "maximum": 1, "description": what})
}

/// JSON Schema of the `sim` section.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sim resource",
        "description": "A simulated instance: no real resource is made. Every random choice is deterministic per seed and node id.",
        "type": "object",
        "properties": {
            "type": {"const": "sim"},
            "create_ms": latency_schema("Latency of create"),
            "ready_after_ms": latency_schema("Time from creation until the instance reports ready"),
            "destroy_ms": latency_schema("Latency of destroy"),
            "fail_create": probability_schema("Probability that create fails permanently for a node. Default 0."),
            "fail_state": probability_schema("Probability that an instance ends `failed` instead of ready. Default 0."),
            "fail_nodes": {
                "type": "array", "items": {"type": "string"},
                "description": "Node names whose create always fails."
            },
            "fail_on_call": {
                "type": "integer", "minimum": 1,
                "description": "Fail the Nth create call (counted from 1) seen by one plugin instance. The count is per plugin instance: the host may run several instances and may replace one, which restarts its count."
            },
            "transient_failures": {
                "type": "integer", "minimum": 0,
                "description": "Transient (retryable) errors returned for a node before its create succeeds. Counted per plugin instance and node id."
            },
            "seed": {"type": "integer", "minimum": 0, "description": "Seed of every random choice. Default 0."},
            "adopt": {"type": "boolean", "description": "When true, find reports an instance for any node (rebuilt deterministically, created long ago). Default false."},
            "network": {
                "enum": ["loopback", "private"],
                "description": "loopback (default): primary address in 127.0.0.0/8, which answers ping; private address a fake 10.x.y.z. private: both addresses fake 10.x.y.z, which nothing answers (use `ping: false` in health checks)."
            },
            "cost_per_hour": {"type": "number", "minimum": 0, "description": "Simulated price per hour of uptime; cost is reported only when set."}
        },
        "required": ["type"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_zero_latency_and_no_failures() {
        let s = SimSection::parse(&json!({"type": "sim"})).unwrap();
        assert_eq!(s.create_ms, Latency::Fixed(0));
        assert_eq!(s.ready_after_ms, Latency::Fixed(0));
        assert_eq!(s.fail_create, 0.0);
        assert_eq!(s.transient_failures, 0);
        assert!(!s.adopt);
        assert_eq!(s.network, Network::Loopback);
    }

    #[test]
    fn ranges_and_probabilities_are_checked_with_their_pointer() {
        let e = SimSection::parse(&json!({"type": "sim", "create_ms": [50, 10]})).unwrap_err();
        assert!(
            matches!(&e, PluginError::InvalidConfig { path, .. } if path == "/create_ms"),
            "{e}"
        );
        let e = SimSection::parse(&json!({"type": "sim", "fail_state": 1.5})).unwrap_err();
        assert!(
            matches!(&e, PluginError::InvalidConfig { path, .. } if path == "/fail_state"),
            "{e}"
        );
        let e = SimSection::parse(&json!({"type": "sim", "fail_on_call": 0})).unwrap_err();
        assert!(matches!(e, PluginError::InvalidConfig { .. }));
        let e = SimSection::parse(&json!({"type": "sim", "create_ms": "fast"})).unwrap_err();
        assert!(
            matches!(&e, PluginError::InvalidConfig { path, .. } if path == "/create_ms"),
            "{e}"
        );
        let e = SimSection::parse(&json!({"type": "sim", "latency": 5})).unwrap_err();
        assert!(e.to_string().contains("unknown field `latency`"), "{e}");
    }

    #[test]
    fn schema_lists_every_field_of_the_section() {
        let schema = schema();
        let props = schema["properties"].as_object().unwrap();
        for key in [
            "type",
            "create_ms",
            "ready_after_ms",
            "destroy_ms",
            "fail_create",
            "fail_state",
            "fail_nodes",
            "fail_on_call",
            "transient_failures",
            "seed",
            "adopt",
            "network",
            "cost_per_hour",
        ] {
            assert!(props.contains_key(key), "schema lacks {key}");
            // Every key the schema allows is accepted by the parser.
        }
        let full = json!({
            "type": "sim", "create_ms": [1, 2], "ready_after_ms": 3, "destroy_ms": 4,
            "fail_create": 0.5, "fail_state": 0.5, "fail_nodes": ["a"], "fail_on_call": 2,
            "transient_failures": 1, "seed": 7, "adopt": true, "network": "private",
            "cost_per_hour": 0.25
        });
        assert_eq!(props.len(), full.as_object().unwrap().len());
        SimSection::parse(&full).unwrap();
        assert_eq!(schema["additionalProperties"], false);
    }
}
