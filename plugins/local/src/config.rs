//! The `local` resource section: its serde type, the checks beyond its JSON Schema, and
//! the schema itself. Also the plain `command`/`env` form shared with docker-style
//! contextualisation attributes. Pure: no host calls.

use occopus_sdk::{PluginError, Result};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Default grace period between SIGTERM and SIGKILL on destroy, seconds.
pub const DEFAULT_STOP_GRACE_S: u64 = 5;
/// Default limit on the setup steps (bootcmd, runcmd), seconds.
pub const DEFAULT_SETUP_TIMEOUT_S: u64 = 600;

/// A command: a string run with `sh -c`, or a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with `sh -c`.
    Shell(String),
    /// Program and arguments, run as they are.
    Argv(Vec<String>),
}

impl Command {
    /// Parse a JSON command (string, or a list of strings/scalars). `pointer` names the
    /// field for errors.
    pub fn from_value(v: &Value, pointer: &str) -> Result<Self> {
        match v {
            Value::String(s) if s.trim().is_empty() => {
                Err(PluginError::invalid(pointer, "the command is empty"))
            }
            Value::String(s) => Ok(Self::Shell(s.clone())),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PluginError::invalid(pointer, "the command list is empty"));
                }
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match scalar_text(item) {
                        Some(s) => argv.push(s),
                        None => {
                            return Err(PluginError::invalid(
                                format!("{pointer}/{i}"),
                                "expected a string",
                            ));
                        }
                    }
                }
                if argv[0].is_empty() {
                    return Err(PluginError::invalid(
                        format!("{pointer}/0"),
                        "the program name is empty",
                    ));
                }
                Ok(Self::Argv(argv))
            }
            _ => Err(PluginError::invalid(
                pointer,
                "expected a string (run with `sh -c`) or a list of strings (program and arguments)",
            )),
        }
    }

    /// How the command reads in logs.
    pub fn display(&self) -> String {
        match self {
            Self::Shell(s) => s.clone(),
            Self::Argv(a) => a.join(" "),
        }
    }
}

/// A scalar as text (strings as they are, numbers and booleans printed); `None` for
/// null, lists and mappings.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `k` can name an environment variable.
pub fn valid_env_name(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

/// Parse an `env` mapping (`NAME: value`, values strings, numbers or booleans).
pub fn env_from_map(m: &Map<String, Value>, pointer: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
        if !valid_env_name(k) {
            return Err(PluginError::invalid(
                p,
                format!("`{k}` is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        let Some(text) = scalar_text(v) else {
            return Err(PluginError::invalid(
                p,
                "expected a string, number or boolean",
            ));
        };
        if text.contains('\0') {
            return Err(PluginError::invalid(p, "the value contains a NUL byte"));
        }
        out.push((k.clone(), text));
    }
    Ok(out)
}

/// Parse an `env` list of `NAME=value` strings (docker contextualisation's form).
pub fn env_from_list(items: &[Value], pointer: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = format!("{pointer}/{i}");
        let Some(text) = item.as_str() else {
            return Err(PluginError::invalid(p, "expected a string `NAME=value`"));
        };
        let Some((k, v)) = text.split_once('=') else {
            return Err(PluginError::invalid(p, "expected `NAME=value`"));
        };
        if !valid_env_name(k) || v.contains('\0') {
            return Err(PluginError::invalid(
                p,
                format!("`{k}` is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The rendered `resource` section of type `local`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    command: Option<Value>,
    #[serde(default)]
    env: Option<Map<String, Value>>,
    #[serde(default)]
    keep_workdir: bool,
    #[serde(default)]
    stop_grace: Option<u64>,
    #[serde(default)]
    setup_timeout: Option<u64>,
    /// A label (accepted, not used).
    #[serde(default, rename = "name")]
    _name: Option<String>,
    /// A label for node filters (accepted, not used).
    #[serde(default, rename = "variant")]
    _variant: Option<Value>,
}

/// The section, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSection {
    /// The service process, if any.
    pub command: Option<Command>,
    /// Environment for every step and the service.
    pub env: Vec<(String, String)>,
    /// Keep the node directory (and its `node.log`) after destroy.
    pub keep_workdir: bool,
    /// SIGTERM → SIGKILL grace period on destroy, seconds.
    pub stop_grace_s: u64,
    /// Limit on the setup steps, seconds.
    pub setup_timeout_s: u64,
}

impl LocalSection {
    /// Parse and check a section.
    pub fn parse(section: &Value) -> Result<Self> {
        let raw: RawSection = occopus_sdk::parse_section(section)?;
        let command = raw
            .command
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| Command::from_value(v, "/command"))
            .transpose()?;
        let env = match &raw.env {
            Some(m) => env_from_map(m, "/env")?,
            None => Vec::new(),
        };
        let stop_grace_s = raw.stop_grace.unwrap_or(DEFAULT_STOP_GRACE_S);
        if stop_grace_s > 3600 {
            return Err(PluginError::invalid("/stop_grace", "at most 3600 seconds"));
        }
        let setup_timeout_s = raw.setup_timeout.unwrap_or(DEFAULT_SETUP_TIMEOUT_S);
        if setup_timeout_s == 0 {
            return Err(PluginError::invalid(
                "/setup_timeout",
                "must be at least 1 second",
            ));
        }
        Ok(Self {
            command,
            env,
            keep_workdir: raw.keep_workdir,
            stop_grace_s,
            setup_timeout_s,
        })
    }
}

/// JSON Schema of the `local` section.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "local resource",
        "description": "A node instance on this machine: its own working directory, its own loopback address (127.0.0.x), and a process group running the cloud-init setup steps and the service command.",
        "type": "object",
        "properties": {
            "type": {"const": "local"},
            "command": {
                "description": "The service process: a string (run with `sh -c`) or a list (program and arguments). The node is ready while it runs; it exiting with 0 is shutdown, with another code failed. Without it (and without a docker-style contextualisation `command`), the node is ready once its setup steps succeeded.",
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1}
                ]
            },
            "env": {
                "type": "object",
                "description": "Environment of the setup steps and the service (NAME: value). Nothing else is inherited from the orchestrator except PATH.",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": {"type": ["string", "number", "boolean"]}
            },
            "keep_workdir": {
                "type": "boolean",
                "description": "Keep the node directory (with node.log) after destroy. Default false: it is removed."
            },
            "stop_grace": {
                "type": "integer", "minimum": 0, "maximum": 3600,
                "description": "Seconds between SIGTERM and SIGKILL when the node is destroyed. Default 5."
            },
            "setup_timeout": {
                "type": "integer", "minimum": 1,
                "description": "Seconds the setup steps (bootcmd, runcmd) may take before the node is reported failed. Default 600."
            },
            "name": {"type": "string", "description": "A label for humans and auth-data selection; not used otherwise."},
            "variant": {
                "type": ["string", "number", "boolean"],
                "description": "A free label, not used by the plugin: lets a node's `filter` choose between implementations."
            }
        },
        "required": ["type"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_path(e: &PluginError) -> String {
        match e {
            PluginError::InvalidConfig { path, .. } => path.clone(),
            other => panic!("not invalid-config: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_full_section() {
        let s = LocalSection::parse(&json!({"type": "local"})).unwrap();
        assert_eq!(s.command, None);
        assert!(s.env.is_empty());
        assert!(!s.keep_workdir);
        assert_eq!(s.stop_grace_s, DEFAULT_STOP_GRACE_S);
        assert_eq!(s.setup_timeout_s, DEFAULT_SETUP_TIMEOUT_S);

        let full = json!({
            "type": "local", "command": ["python3", "-u", "app.py"],
            "env": {"PORT": 8080, "DEBUG": true, "NAME": "x"},
            "keep_workdir": true, "stop_grace": 1, "setup_timeout": 30,
            "name": "n", "variant": "minimal"
        });
        let s = LocalSection::parse(&full).unwrap();
        assert_eq!(
            s.command,
            Some(Command::Argv(vec![
                "python3".into(),
                "-u".into(),
                "app.py".into()
            ]))
        );
        assert_eq!(
            s.env,
            vec![
                ("PORT".into(), "8080".into()),
                ("DEBUG".into(), "true".into()),
                ("NAME".into(), "x".into())
            ]
        );
        assert!(s.keep_workdir);
        assert_eq!((s.stop_grace_s, s.setup_timeout_s), (1, 30));
        // The schema lists exactly the keys the parser accepts.
        let schema = schema();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), full.as_object().unwrap().len());
        for k in full.as_object().unwrap().keys() {
            assert!(props.contains_key(k), "schema lacks {k}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({"type": "local", "command": ""}), "/command"),
            (json!({"type": "local", "command": []}), "/command"),
            (json!({"type": "local", "command": [""]}), "/command/0"),
            (json!({"type": "local", "command": ["a", {}]}), "/command/1"),
            (json!({"type": "local", "command": 5}), "/command"),
            (json!({"type": "local", "env": {"1X": "a"}}), "/env/1X"),
            (json!({"type": "local", "env": {"A": [1]}}), "/env/A"),
            (json!({"type": "local", "stop_grace": 7200}), "/stop_grace"),
            (
                json!({"type": "local", "setup_timeout": 0}),
                "/setup_timeout",
            ),
            (json!({"type": "local", "stop_grace": -1}), "/stop_grace"),
        ];
        for (section, path) in cases {
            let e = LocalSection::parse(&section).unwrap_err();
            assert_eq!(err_path(&e), path, "{section}: {e}");
        }
        let e = LocalSection::parse(&json!({"type": "local", "cmd": "x"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `cmd`"), "{e}");
    }

    #[test]
    fn docker_style_env_list() {
        let env = env_from_list(&[json!("A=1"), json!("B=x=y")], "/env").unwrap();
        assert_eq!(
            env,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        let e = env_from_list(&[json!("novalue")], "/env").unwrap_err();
        assert_eq!(err_path(&e), "/env/0");
    }
}
