//! The `health_check` section of type `basic` (Occopus's keys only) and its JSON Schema.
//! Pure: no host calls.

use occopus_sdk::Result;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;

/// One `mysqldbs` entry: a database to log in to on the node's primary address.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlDb {
    /// Database name (sent with `CLIENT_CONNECT_WITH_DB`).
    pub name: String,
    /// User name.
    pub user: String,
    /// Password. Never printed.
    pub pass: String,
}

impl fmt::Debug for MysqlDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlDb")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("pass", &"<redacted>")
            .finish()
    }
}

/// The rendered `health_check` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSection {
    /// `basic` (absent means basic).
    #[serde(rename = "type", default)]
    pub type_name: Option<String>,
    /// Ping the primary address. Default true, as in Occopus.
    #[serde(default = "default_ping")]
    pub ping: bool,
    /// TCP ports that must accept a connection.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// URLs that must answer a HEAD request with 2xx (after redirects).
    #[serde(default)]
    pub urls: Vec<String>,
    /// MySQL databases that must accept a login.
    #[serde(default)]
    pub mysqldbs: Vec<MysqlDb>,
    /// Seconds of continuous failure before the engine declares the node failed (used by
    /// the engine, not by the checks). Default 600.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_ping() -> bool {
    true
}

fn default_timeout() -> u64 {
    600
}

impl BasicSection {
    /// Parse a section.
    pub fn parse(section: &Value) -> Result<Self> {
        occopus_sdk::parse_section(section)
    }
}

/// JSON Schema of the `basic` section: Occopus's keys and nothing else.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "basic health check",
        "description": "Occopus's health check, run from the orchestrator against the node's primary address: ping, then ports, then urls, then mysqldbs, stopping at the first failure.",
        "type": "object",
        "properties": {
            "type": {"const": "basic", "description": "Only `basic`; may be omitted."},
            "ping": {"type": "boolean", "description": "Ping the node (one ICMP echo, 1 s timeout). Default true; set false for containers and networks that drop ICMP."},
            "ports": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 65535},
                "description": "TCP ports that must accept a connection."
            },
            "urls": {
                "type": "array",
                "items": {"type": "string"},
                "description": "URLs (templates: `ip`, `node_id`, `variables`) that must answer HEAD with 2xx, redirects followed, 10 s timeout."
            },
            "mysqldbs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "Database name."},
                        "user": {"type": "string", "description": "User name."},
                        "pass": {"type": "string", "description": "Password."}
                    },
                    "required": ["name", "user", "pass"],
                    "additionalProperties": false
                },
                "description": "MySQL/MariaDB databases on port 3306 of the node that must accept a login."
            },
            "timeout": {
                "type": "integer", "minimum": 0,
                "description": "Seconds of continuous failure after the resource is ready before the node is declared failed. Default 600."
            }
        },
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_occopus() {
        let s = BasicSection::parse(&json!({})).unwrap();
        assert!(s.ping);
        assert!(s.ports.is_empty() && s.urls.is_empty() && s.mysqldbs.is_empty());
        assert_eq!(s.timeout, 600);
    }

    #[test]
    fn unknown_keys_and_bad_ports_are_rejected_with_their_pointer() {
        let e = BasicSection::parse(&json!({"type": "basic", "port": [80]})).unwrap_err();
        assert!(e.to_string().contains("unknown field `port`"), "{e}");
        let e = BasicSection::parse(&json!({"ports": [80, 70000]})).unwrap_err();
        assert!(e.to_string().contains("`/ports/1`"), "{e}");
        let e =
            BasicSection::parse(&json!({"mysqldbs": [{"name": "db", "user": "u"}]})).unwrap_err();
        assert!(e.to_string().contains("`/mysqldbs/0/pass`"), "{e}");
    }

    #[test]
    fn password_is_not_printed() {
        let s = BasicSection::parse(
            &json!({"mysqldbs": [{"name": "wp", "user": "wp", "pass": "s3cret"}]}),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn schema_has_exactly_occopus_keys() {
        let schema = schema();
        let mut keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["mysqldbs", "ping", "ports", "timeout", "type", "urls"]
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
