//! Typed requests handed to plugin traits, and section parsing.
//!
//! [`parse_section`] turns a rendered JSON section into the plugin's own config type; a
//! bad field becomes [`PluginError::InvalidConfig`] carrying the JSON pointer of that
//! field, so the user sees `invalid configuration at /flavor: expected a string`.
//! [`Credentials`] wraps the auth-data entry and never prints it.

use crate::error::{PluginError, Result};
use crate::types::{Addresses, NodeContext};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::sync::OnceLock;

/// Parse a section into `T`. Errors name the JSON pointer of the bad field; for a missing
/// field, the pointer of the field that should be there.
pub fn parse_section<T: DeserializeOwned>(section: &Value) -> Result<T> {
    deserialize_tracked(section).map_err(|e| {
        let (pointer, message) = pointer_and_message(&e);
        PluginError::invalid(pointer, message)
    })
}

/// Parse plugin-made JSON (instance data) into `T`. Errors are internal: instance data
/// is written by the plugin itself, so a mismatch is a plugin bug or a format change.
pub fn parse_instance<T: DeserializeOwned>(instance: &Value) -> Result<T> {
    deserialize_tracked(instance).map_err(|e| {
        let (pointer, message) = pointer_and_message(&e);
        PluginError::internal(format!(
            "instance data does not match this plugin version at `{pointer}`: {message}"
        ))
    })
}

/// Deserialise `v`, tracking the path only when that fails (tracking costs on every call;
/// it is needed only to report an error).
fn deserialize_tracked<T: DeserializeOwned>(
    v: &Value,
) -> std::result::Result<T, serde_path_to_error::Error<serde_json::Error>> {
    match T::deserialize(v) {
        Ok(t) => Ok(t),
        Err(_) => serde_path_to_error::deserialize(v),
    }
}

/// The JSON pointer and message of a deserialisation error. A `missing field `x``
/// error is reported at the pointer of `x` itself.
fn pointer_and_message(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut pointer = json_pointer(e.path());
    let message = e.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        pointer.push('/');
        pointer.push_str(&escape_pointer_token(field));
        return (pointer, "required field is missing".to_string());
    }
    (pointer, message)
}

/// Render a serde path as an RFC 6901 JSON pointer (`/ports/0`).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&escape_pointer_token(key));
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Parse a JSON document received from the host. The host sends well-formed JSON; this
/// guards against a broken host rather than user input.
pub(crate) fn parse_json(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| PluginError::internal(format!("host sent malformed JSON for {what}: {e}")))
}

/// The auth-data entry selected for a section. `Debug` prints `Credentials(<redacted>)`;
/// there is no `Display`, and parse errors name the field, never its value.
#[derive(Clone, PartialEq)]
pub struct Credentials(Value);

impl Credentials {
    /// Wrap an auth-data entry.
    pub fn new(value: Value) -> Self {
        Self(value)
    }
    /// A string field (`"username"`), if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    /// A string field that must be present. The error names the field, not a value.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key).ok_or_else(|| {
            PluginError::invalid(
                "",
                format!("credentials: auth data entry has no string field `{key}`"),
            )
        })
    }
    /// Parse the whole entry into `T`. Error messages keep field names but never values.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_path_to_error::deserialize(&self.0).map_err(|e| {
            let (pointer, message) = pointer_and_message(&e);
            let message = if message == "required field is missing" {
                message
            } else {
                // serde's messages quote the offending value; credentials must not leak.
                "wrong type or value".to_string()
            };
            PluginError::invalid("", format!("credentials field `{pointer}`: {message}"))
        })
    }
    /// The raw entry. Never log it.
    pub fn expose(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Everything a resource handler needs to create one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// Who the instance is.
    pub node: NodeContext,
    /// The resource `type` (one of the plugin's types).
    pub type_name: String,
    /// The rendered `resource` section.
    pub resource: Value,
    /// Rendered user data (`cloudinit` contextualisation), if any.
    pub context: Option<String>,
    /// Rendered contextualisation attributes (`{"env": [...], "command": ...}` for docker,
    /// the section's `attributes` otherwise, `null` when absent).
    pub attributes: Value,
    /// The auth-data entry selected for this section, if any.
    pub credentials: Option<Credentials>,
}

impl CreateRequest {
    /// Parse the `resource` section into the plugin's config type.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        parse_section(&self.resource)
    }
    /// The credentials, or an error saying the section needs an auth-data entry.
    pub fn credentials(&self) -> Result<&Credentials> {
        require_credentials(self.credentials.as_ref(), &self.type_name)
    }
}

/// An existing instance, for `state`, `addresses`, `destroy` and `cost`.
///
/// These calls come often (the host polls `state` until an instance is ready), so the
/// resource section and the instance data stay JSON text until the plugin reads them:
/// a `state` that needs only the instance data never parses the section.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRef {
    /// Who the instance is.
    pub node: NodeContext,
    /// The resource `type`.
    pub type_name: String,
    /// The rendered `resource` section.
    pub resource: Json,
    /// The auth-data entry selected for this section, if any.
    pub credentials: Option<Credentials>,
    /// What `create` or `find` returned.
    pub instance: Json,
}

impl InstanceRef {
    /// Parse the `resource` section into the plugin's config type.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        self.resource.parse_section()
    }
    /// Parse the instance data `create` returned.
    pub fn instance<T: DeserializeOwned>(&self) -> Result<T> {
        self.instance.parse_instance()
    }
    /// The credentials, or an error saying the section needs an auth-data entry.
    pub fn credentials(&self) -> Result<&Credentials> {
        require_credentials(self.credentials.as_ref(), &self.type_name)
    }
}

/// JSON the host sent as text, parsed only when it is read: typed reads deserialise
/// straight from the text, and [`Json::value`] parses it once into a [`Value`].
#[derive(Clone)]
pub struct Json {
    what: &'static str,
    text: String,
    value: OnceLock<Value>,
}

impl Json {
    /// JSON text the host sent; `what` names it in errors (`"instance data"`).
    pub fn from_text(what: &'static str, text: impl Into<String>) -> Self {
        Self {
            what,
            text: text.into(),
            value: OnceLock::new(),
        }
    }

    /// An already parsed value (for tests).
    pub fn from_value(what: &'static str, value: Value) -> Self {
        Self {
            what,
            text: value.to_string(),
            value: OnceLock::from(value),
        }
    }

    /// The text as the host sent it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether it is JSON `null` (for instance data: `create` never returned).
    pub fn is_null(&self) -> bool {
        self.text.trim() == "null"
    }

    /// The parsed value (parsed on the first call).
    pub fn value(&self) -> Result<&Value> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let v = parse_json(self.what, &self.text)?;
        Ok(self.value.get_or_init(|| v))
    }

    /// Deserialise as a section: see [`parse_section`].
    pub fn parse_section<T: DeserializeOwned>(&self) -> Result<T> {
        self.typed(parse_section)
    }

    /// Deserialise as instance data: see [`parse_instance`].
    pub fn parse_instance<T: DeserializeOwned>(&self) -> Result<T> {
        self.typed(parse_instance)
    }

    /// Straight from the text; only a failure goes through the value, for the error's
    /// JSON pointer (`slow` reports it).
    fn typed<T: DeserializeOwned>(&self, slow: fn(&Value) -> Result<T>) -> Result<T> {
        match serde_json::from_str(&self.text) {
            Ok(v) => Ok(v),
            Err(_) => slow(self.value()?),
        }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || matches!((self.value(), other.value()), (Ok(a), Ok(b)) if a == b)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn require_credentials<'a>(c: Option<&'a Credentials>, type_name: &str) -> Result<&'a Credentials> {
    c.ok_or_else(|| {
        PluginError::invalid(
            "",
            format!(
                "resource type `{type_name}` needs credentials, but no auth_data entry matched \
                 this section (add one with `type: {type_name}`)"
            ),
        )
    })
}

/// A health check request: the rendered `health_check` section and where the node is.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRequest {
    /// Who the instance is.
    pub node: NodeContext,
    /// The `health_check` type.
    pub type_name: String,
    /// The rendered section (URLs and database strings already rendered by the host).
    pub section: Value,
    /// Where the node is.
    pub addresses: Addresses,
}

impl HealthRequest {
    /// Parse the section into the plugin's config type.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        parse_section(&self.section)
    }
}

/// A config-manager call about the whole infrastructure.
#[derive(Debug, Clone, PartialEq)]
pub struct InfraRequest {
    /// Infrastructure id.
    pub infra_id: String,
    /// The `config_management` type.
    pub type_name: String,
    /// The rendered `config_management` section.
    pub section: Value,
    /// The auth-data entry selected for this section, if any.
    pub credentials: Option<Credentials>,
}

impl InfraRequest {
    /// Parse the section into the plugin's config type.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        parse_section(&self.section)
    }
}

/// A config-manager call about one node instance.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequest {
    /// Who the instance is.
    pub node: NodeContext,
    /// The `config_management` type.
    pub type_name: String,
    /// The rendered `config_management` section.
    pub section: Value,
    /// The auth-data entry selected for this section, if any.
    pub credentials: Option<Credentials>,
    /// Rendered contextualisation attributes.
    pub attributes: Value,
    /// Where the node is.
    pub addresses: Addresses,
}

impl NodeRequest {
    /// Parse the section into the plugin's config type.
    pub fn section<T: DeserializeOwned>(&self) -> Result<T> {
        parse_section(&self.section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        image: String,
        #[serde(default)]
        ports: Vec<u16>,
        #[serde(default)]
        nested: Option<Nested>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(rename = "a/b")]
        ab: u32,
    }

    fn err(v: Value) -> PluginError {
        match parse_section::<Cfg>(&v) {
            Ok(c) => panic!("expected an error, parsed {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_field_is_reported_at_its_json_pointer() {
        let e = err(json!({"image": "x", "ports": [80, "http"]}));
        let PluginError::InvalidConfig { path, message } = e else {
            panic!("wrong variant")
        };
        assert_eq!(path, "/ports/1");
        assert!(message.contains("expected u16"), "{message}");
    }

    #[test]
    fn missing_field_points_at_the_field() {
        assert_eq!(
            err(json!({"ports": []})),
            PluginError::invalid("/image", "required field is missing")
        );
        let e = err(json!({"image": "x", "nested": {}}));
        assert_eq!(
            e,
            PluginError::invalid("/nested/a~1b", "required field is missing")
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let e = err(json!({"image": "x", "imgae": 1}));
        assert!(e.to_string().contains("unknown field `imgae`"), "{e}");
    }

    #[test]
    fn credentials_never_print_their_values() {
        let c = Credentials::new(json!({"username": "u", "password": "hunter2"}));
        assert_eq!(format!("{c:?}"), "Credentials(<redacted>)");
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Auth {
            username: String,
            password: u32,
        }
        let e = c.parse::<Auth>().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("/password"), "{e}");
        assert_eq!(c.require_str("username"), Ok("u"));
        assert!(c.require_str("token").is_err());
    }

    #[test]
    fn missing_credentials_explain_the_fix() {
        let req = CreateRequest {
            node: NodeContext::default(),
            type_name: "ec2".into(),
            resource: json!({}),
            context: None,
            attributes: Value::Null,
            credentials: None,
        };
        let e = req.credentials().unwrap_err().to_string();
        assert!(e.contains("auth_data"), "{e}");
    }

    fn instance_ref(resource: &str, instance: &str) -> InstanceRef {
        InstanceRef {
            node: NodeContext::default(),
            type_name: "t".into(),
            resource: Json::from_text("the resource section", resource),
            credentials: None,
            instance: Json::from_text("instance data", instance),
        }
    }

    #[test]
    fn instance_ref_parses_only_what_is_read() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Data {
            id: String,
        }
        // The resource text is not even JSON: a state call that reads only the instance
        // data never looks at it.
        let r = instance_ref("{not json", r#"{"id": "i-1"}"#);
        assert_eq!(r.instance::<Data>().unwrap(), Data { id: "i-1".into() });
        assert!(
            r.instance.value.get().is_none(),
            "typed reads build no Value"
        );
        assert!(r.resource.value.get().is_none());
        let e = r.resource.value().unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("the resource section"), "{e}");
        // A value is parsed once and kept.
        assert_eq!(r.instance.value().unwrap(), &json!({"id": "i-1"}));
        assert!(r.instance.value.get().is_some());
    }

    #[test]
    fn typed_reads_from_text_report_errors_like_values_do() {
        let r = instance_ref(r#"{"image": "x", "ports": [80, "http"]}"#, "null");
        let e = r.section::<Cfg>().unwrap_err();
        assert_eq!(e, err(json!({"image": "x", "ports": [80, "http"]})));
        let PluginError::InvalidConfig { path, message } = e else {
            panic!("wrong variant")
        };
        assert_eq!(path, "/ports/1");
        assert!(
            !message.contains("line 1"),
            "no position in host text: {message}"
        );
        assert!(r.instance.is_null());
        let e = r.instance::<Cfg>().unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("instance data"), "{e}");
    }

    #[test]
    fn json_equality_is_by_value() {
        let a = Json::from_text("x", r#"{ "a" : 1 }"#);
        let b = Json::from_value("x", json!({"a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, Json::from_value("x", json!({"a": 2})));
        assert_eq!(format!("{b:?}"), r#"{"a":1}"#);
    }
}
