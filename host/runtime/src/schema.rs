//! Host-side JSON Schema checks of description sections, before any plugin call.
//!
//! Owns: compiling each type's schema once at load (an invalid schema refuses the
//! plugin) and turning validation errors into [`FieldError`]s with JSON-pointer paths and
//! readable messages. With `unrendered`, a string holding a template (`{{` or `{%`) is
//! accepted wherever the schema expects a scalar, since its value is only known after
//! rendering.
//!
//! Must not: fetch remote `$ref`s (no retriever is configured; such a schema is refused).

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, Validator};
use occopus_model::plugin::FieldError;
use occopus_model::suggest;
use serde_json::Value;

/// Most errors reported for one section.
const MAX_ERRORS: usize = 20;

/// A compiled section schema.
#[derive(Debug)]
pub struct SectionSchema {
    schema: Value,
    validator: Validator,
}

impl SectionSchema {
    /// Compile `schema` (JSON text from plugin metadata).
    pub fn compile(schema_text: &str) -> Result<Self, String> {
        let schema: Value =
            serde_json::from_str(schema_text).map_err(|e| format!("schema is not JSON: {e}"))?;
        if !schema.is_object() && !schema.is_boolean() {
            return Err("schema must be a JSON object (or `true`)".into());
        }
        jsonschema::meta::validate(&schema).map_err(|e| {
            let at = e.instance_path().as_str();
            if at.is_empty() {
                format!("invalid JSON Schema: {e}")
            } else {
                format!("invalid JSON Schema at `{at}`: {e}")
            }
        })?;
        let validator =
            jsonschema::validator_for(&schema).map_err(|e| format!("invalid JSON Schema: {e}"))?;
        Ok(Self { schema, validator })
    }

    /// The schema document.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Check `section`; empty when valid.
    pub fn check(&self, section: &Value, unrendered: bool) -> Vec<FieldError> {
        let mut out = Vec::new();
        for e in self.validator.iter_errors(section) {
            let path = e.instance_path().as_str().to_string();
            if unrendered && is_template(e.instance()) && scalar_expected(e.kind()) {
                continue;
            }
            let message = match e.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    self.unexpected_message(unexpected, e.schema_path().as_str())
                }
                _ => e.to_string(),
            };
            out.push(FieldError { path, message });
            if out.len() == MAX_ERRORS {
                break;
            }
        }
        out
    }

    /// "unknown field `imageid`; did you mean `image_id`?"
    fn unexpected_message(&self, unexpected: &[String], schema_path: &str) -> String {
        // schema_path points at the `additionalProperties` keyword; its parent object
        // lists the known properties.
        let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
        let known: Vec<String> = self
            .schema
            .pointer(parent)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let parts: Vec<String> = unexpected
            .iter()
            .map(
                |u| match suggest::closest(u, known.iter().map(String::as_str)) {
                    Some(s) => format!("unknown field `{u}`; did you mean `{s}`?"),
                    None if known.is_empty() => format!("unknown field `{u}`"),
                    None => format!("unknown field `{u}` (known: {})", known.join(", ")),
                },
            )
            .collect();
        parts.join("; ")
    }
}

fn is_template(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.contains("{{") || s.contains("{%"))
}

/// Whether the failing keyword is about a scalar value (so a template may stand in).
fn scalar_expected(kind: &ValidationErrorKind) -> bool {
    let scalar = |t: JsonType| {
        matches!(
            t,
            JsonType::String
                | JsonType::Number
                | JsonType::Integer
                | JsonType::Boolean
                | JsonType::Null
        )
    };
    match kind {
        ValidationErrorKind::Type {
            kind: TypeKind::Single(t),
        } => scalar(*t),
        ValidationErrorKind::Type {
            kind: TypeKind::Multiple(set),
        } => set.iter().any(scalar),
        // Keywords that constrain a value's content: enum, const, pattern, format,
        // lengths, ranges.
        ValidationErrorKind::Enum { .. }
        | ValidationErrorKind::Constant { .. }
        | ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::Format { .. }
        | ValidationErrorKind::MinLength { .. }
        | ValidationErrorKind::MaxLength { .. }
        | ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. }
        | ValidationErrorKind::MultipleOf { .. }
        | ValidationErrorKind::AnyOf { .. }
        | ValidationErrorKind::OneOfNotValid { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> SectionSchema {
        SectionSchema::compile(
            &json!({
                "type": "object",
                "required": ["image_id"],
                "additionalProperties": false,
                "properties": {
                    "image_id": {"type": "string", "pattern": "^ami-"},
                    "count": {"type": "integer", "minimum": 1},
                    "tags": {"type": "array", "items": {"type": "string"}}
                }
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn paths_and_messages() {
        let errs = schema().check(
            &json!({"image_id": "ami-1", "count": "two", "tags": ["a", 3]}),
            false,
        );
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"/count"), "{errs:?}");
        assert!(paths.contains(&"/tags/1"), "{errs:?}");
        let errs = schema().check(&json!({"imageid": "ami-1"}), false);
        assert!(
            errs.iter()
                .any(|e| e.message.contains("did you mean `image_id`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.message.contains("\"image_id\" is a required property")),
            "{errs:?}"
        );
    }

    #[test]
    fn templates_stand_in_for_scalars_only_when_unrendered() {
        let s = schema();
        let sec = json!({"image_id": "{{ variables.ami }}", "count": "{{ n }}"});
        assert!(s.check(&sec, true).is_empty(), "{:?}", s.check(&sec, true));
        assert_eq!(s.check(&sec, false).len(), 2);
        // An array position still needs an array.
        let errs = s.check(&json!({"image_id": "ami-1", "tags": "{{ t }}"}), true);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "/tags");
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert!(
            SectionSchema::compile("{")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            SectionSchema::compile("[]")
                .unwrap_err()
                .contains("must be a JSON object")
        );
        let e = SectionSchema::compile(r#"{"type": "strin"}"#).unwrap_err();
        assert!(e.contains("invalid JSON Schema"), "{e}");
        let e = SectionSchema::compile(r#"{"$ref": "https://example.com/s.json"}"#).unwrap_err();
        assert!(e.contains("invalid JSON Schema"), "{e}");
    }
}
