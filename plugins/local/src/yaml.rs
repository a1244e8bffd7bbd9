//! YAML text (a cloud-config) to a JSON value, over `saphyr-parser` events. Only the first
//! document is read. Plain scalars resolve as YAML 1.2's core schema (null, booleans,
//! integers, floats), except that integers written with a leading zero (`0644`) stay
//! strings, so neither YAML 1.1's octal reading nor 1.2's decimal one is guessed. Anchors
//! and aliases are resolved; tags other than `!!str` are ignored. Pure: no host calls.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Deepest nesting accepted (user data is small; this bounds recursion-free work anyway).
const MAX_DEPTH: usize = 64;

enum Frame {
    Seq(usize, Vec<Value>),
    Map(usize, Map<String, Value>, Option<String>),
}

/// Parse YAML text into a JSON value (`Null` for an empty document).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut started = false;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| e.to_string())?;
        let line = span.start.line();
        let (value, anchor) = match ev {
            Event::StreamStart | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                if started {
                    break;
                }
                started = true;
                continue;
            }
            Event::DocumentEnd => break,
            Event::StreamEnd => break,
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("line {line}: nested too deeply"));
                }
                stack.push(Frame::Seq(anchor, Vec::new()));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("line {line}: nested too deeply"));
                }
                stack.push(Frame::Map(anchor, Map::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(a, items)) => (Value::Array(items), a),
                _ => return Err(format!("line {line}: unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(a, m, None)) => (Value::Object(m), a),
                _ => return Err(format!("line {line}: unbalanced mapping")),
            },
            Event::Alias(id) => match anchors.get(&id) {
                Some(v) => (v.clone(), 0),
                None => return Err(format!("line {line}: alias of an unknown anchor")),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let is_str = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
                let v = if style == ScalarStyle::Plain && !is_str {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (v, anchor)
            }
        };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            None => return Ok(value),
            Some(Frame::Seq(_, items)) => items.push(value),
            Some(Frame::Map(_, m, key)) => match key.take() {
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        _ => return Err(format!("line {line}: a mapping key must be a scalar")),
                    };
                    *key = Some(k);
                }
                Some(k) => {
                    m.insert(k, value);
                }
            },
        }
    }
    if !stack.is_empty() {
        return Err("unexpected end of the document".into());
    }
    Ok(Value::Null)
}

fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.len() > 1 && digits.starts_with('0') {
            return Value::String(s.to_string());
        }
        if let Ok(i) = s.parse::<i64>() {
            return Value::Number(i.into());
        }
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Number(i.into());
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(i.into());
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_config_shapes() {
        let v = parse(
            "#cloud-config\nwrite_files:\n  - path: a.txt\n    permissions: '0600'\n    content: |\n      line 1\n      line 2\n  - {path: b, permissions: 0644, append: true}\nruncmd:\n  - echo hi\n  - [ls, -l, 3]\nempty:\nn: 1.5\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "write_files": [
                    {"path": "a.txt", "permissions": "0600", "content": "line 1\nline 2\n"},
                    {"path": "b", "permissions": "0644", "append": true}
                ],
                "runcmd": ["echo hi", ["ls", "-l", 3]],
                "empty": null,
                "n": 1.5
            })
        );
    }

    #[test]
    fn anchors_tags_and_documents() {
        let v = parse("a: &x [1, 2]\nb: *x\nc: !!str 12\nd: '0o7'\ne: 0o17\n---\nz: 1\n").unwrap();
        assert_eq!(
            v,
            json!({"a": [1, 2], "b": [1, 2], "c": "12", "d": "0o7", "e": 15})
        );
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap(), Value::Null);
        assert_eq!(
            parse("- yes\n- 1e3\n- v1.2\n").unwrap(),
            json!(["yes", 1000.0, "v1.2"])
        );
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("b: *nope\n").is_err());
    }
}
