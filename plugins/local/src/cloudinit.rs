//! The subset of cloud-init user data that makes sense for a process on this machine:
//! `write_files`, `bootcmd` and `runcmd` of a `#cloud-config`, or a `#!` script. Other
//! cloud-config keys become warnings. Pure: no host calls.
//!
//! Paths of `write_files` are relative to the node directory; an absolute path is read
//! relative to it too (`/etc/app.conf` → `<node dir>/etc/app.conf`); a path with `..`, or
//! one whose first component starts with `.occopus` (the plugin's own files), is refused.

use crate::config::{Command, scalar_text};
use base64::Engine as _;
use occopus_sdk::{PluginError, Result};
use serde_json::{Map, Value};

/// Prefix of the plugin's own files in the node directory (kept at its top level: the
/// host reports a missing file there as not-found, which `find` relies on).
pub const PRIVATE_PREFIX: &str = ".occopus";
/// Largest decoded file accepted from user data.
const MAX_FILE: usize = 16 << 20;

/// One file to write into the node directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path relative to the node directory, normalised (`a/b.txt`).
    pub path: String,
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Append to an existing file instead of replacing it.
    pub append: bool,
}

/// What the user data asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Setup {
    pub files: Vec<FileSpec>,
    pub bootcmd: Vec<Command>,
    pub runcmd: Vec<Command>,
    /// Things ignored, for the log.
    pub warnings: Vec<String>,
}

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::invalid("", format!("user data: {}", message.into()))
}

/// Parse rendered user data (the `cloudinit` contextualisation's `context`).
pub fn parse_user_data(text: &str) -> Result<Setup> {
    let first = text.lines().next().unwrap_or("").trim_end();
    if text.trim().is_empty() {
        return Ok(Setup::default());
    }
    if first.starts_with("#!") {
        return Ok(Setup {
            files: vec![FileSpec {
                path: format!("{PRIVATE_PREFIX}-user-data"),
                content: text.as_bytes().to_vec(),
                mode: 0o755,
                append: false,
            }],
            runcmd: vec![Command::Argv(vec![format!("./{PRIVATE_PREFIX}-user-data")])],
            ..Setup::default()
        });
    }
    let mut warnings = Vec::new();
    if first.starts_with("#include")
        || first.starts_with("#cloud-boothook")
        || first.starts_with("#part-handler")
        || first.starts_with("Content-Type:")
    {
        return Err(bad(format!(
            "`{first}` user data is not supported by the local backend; use a #cloud-config document or a #! script"
        )));
    }
    if first != "#cloud-config" {
        warnings.push(
            "user data does not start with `#cloud-config`; reading it as a cloud-config anyway"
                .to_string(),
        );
    }
    let doc = crate::yaml::parse(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let map = match doc {
        Value::Null => {
            return Ok(Setup {
                warnings,
                ..Setup::default()
            });
        }
        Value::Object(m) => m,
        _ => return Err(bad("a cloud-config must be a mapping")),
    };
    let mut setup = Setup {
        warnings,
        ..Setup::default()
    };
    for (key, value) in &map {
        match key.as_str() {
            "write_files" => setup.files = write_files(value, &mut setup.warnings)?,
            "bootcmd" => setup.bootcmd = commands("bootcmd", value)?,
            "runcmd" => setup.runcmd = commands("runcmd", value)?,
            other => setup.warnings.push(format!(
                "cloud-config key `{other}` is not supported by the local backend and was ignored"
            )),
        }
    }
    Ok(setup)
}

fn commands(key: &str, v: &Value) -> Result<Vec<Command>> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(bad(format!("`{key}` must be a list"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let c = match item {
            Value::Array(_) => Command::from_value(item, &format!("/{key}/{i}")),
            other => match scalar_text(other) {
                Some(s) => Command::from_value(&Value::String(s), &format!("/{key}/{i}")),
                None => Err(bad("")),
            },
        };
        out.push(c.map_err(|e| {
            bad(format!(
                "`{key}[{i}]` must be a string (run with `sh -c`) or a list of strings{}",
                match e {
                    PluginError::InvalidConfig { message, .. }
                        if !message.is_empty() && !message.starts_with("user data") =>
                        format!(": {message}"),
                    _ => String::new(),
                }
            ))
        })?);
    }
    Ok(out)
}

/// Normalise a `write_files` path to one relative to the node directory.
pub fn node_path(p: &str) -> std::result::Result<String, String> {
    if p.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("leaves the node directory (`..` is not allowed)".into()),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err("names no file".into());
    }
    if parts[0].starts_with(PRIVATE_PREFIX) {
        return Err(format!(
            "names starting with `{PRIVATE_PREFIX}` belong to the local backend"
        ));
    }
    Ok(parts.join("/"))
}

/// Permission bits from a cloud-config `permissions` value: an octal string (`'0644'`,
/// `'644'`, `'0o644'`) or an integer taken as it is (YAML's `0o644`, or 420).
pub fn permissions(v: &Value) -> std::result::Result<u32, String> {
    let mode = match v {
        Value::String(s) => {
            let t = s.trim();
            let t = t.strip_prefix("0o").unwrap_or(t);
            u32::from_str_radix(t, 8).map_err(|_| format!("`{s}` is not an octal mode"))?
        }
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{n} is not a mode"))?,
        _ => return Err("expected an octal string like '0644'".into()),
    };
    if mode > 0o7777 {
        return Err(format!("{mode:o} is not a mode (at most 7777)"));
    }
    Ok(mode)
}

fn write_files(v: &Value, warnings: &mut Vec<String>) -> Result<Vec<FileSpec>> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(bad("`write_files` must be a list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(bad(format!("`write_files[{i}]` must be a mapping")));
        };
        out.push(write_file(i, m, warnings)?);
    }
    Ok(out)
}

fn write_file(i: usize, m: &Map<String, Value>, warnings: &mut Vec<String>) -> Result<FileSpec> {
    let at = |k: &str| format!("`write_files[{i}].{k}`");
    let raw_path = m
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{} is required (a string)", at("path"))))?;
    let path = node_path(raw_path).map_err(|e| bad(format!("{} `{raw_path}` {e}", at("path"))))?;
    let content = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(v) => {
            scalar_text(v).ok_or_else(|| bad(format!("{} must be a string", at("content"))))?
        }
    };
    let encoding = match m.get("encoding") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(_) => return Err(bad(format!("{} must be a string", at("encoding")))),
    };
    let content =
        decode(&content, &encoding).map_err(|e| bad(format!("{}: {e}", at("content"))))?;
    let mode = match m.get("permissions") {
        None | Some(Value::Null) => 0o644,
        Some(v) => permissions(v).map_err(|e| bad(format!("{}: {e}", at("permissions"))))?,
    };
    let append = match m.get("append") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(format!("{} must be true or false", at("append")))),
    };
    for k in m.keys() {
        match k.as_str() {
            "path" | "content" | "encoding" | "permissions" | "append" => {}
            "owner" => warnings.push(format!(
                "{} is ignored: files belong to the user running occopus",
                at("owner")
            )),
            "defer" => warnings.push(format!(
                "{} is ignored: every file is written before any command runs",
                at("defer")
            )),
            other => warnings.push(format!("{} is not supported and was ignored", at(other))),
        }
    }
    Ok(FileSpec {
        path,
        content,
        mode,
        append,
    })
}

/// Decode `content` by cloud-init's `encoding` names.
pub fn decode(content: &str, encoding: &str) -> std::result::Result<Vec<u8>, String> {
    let b64 = |s: &str| {
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| format!("not valid base64: {e}"))
    };
    match encoding {
        "" | "text/plain" => Ok(content.as_bytes().to_vec()),
        "b64" | "base64" => b64(content),
        // `gz` alone means binary content, which YAML carries as base64 (`!!binary`).
        "gz" | "gzip" | "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => {
            gunzip(&b64(content)?)
        }
        other => Err(format!(
            "unknown encoding `{other}` (expected b64, base64, gz+b64, gzip+base64 or text/plain)"
        )),
    }
}

/// Decompress a gzip member (RFC 1952).
pub fn gunzip(data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let short = || "truncated gzip data".to_string();
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Err("not gzip data".into());
    }
    if data[2] != 8 {
        return Err("unknown gzip compression method".into());
    }
    let flags = data[3];
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let n = u16::from_le_bytes([
            *data.get(pos).ok_or_else(short)?,
            *data.get(pos + 1).ok_or_else(short)?,
        ]);
        pos += 2 + n as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = data
                .get(pos..)
                .ok_or_else(short)?
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(short)?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    let body = data
        .get(pos..data.len().saturating_sub(8))
        .ok_or_else(short)?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(body, MAX_FILE)
        .map_err(|e| format!("cannot inflate gzip data: {e:?}"))?;
    let size = u32::from_le_bytes(data[data.len() - 4..].try_into().map_err(|_| short())?);
    if out.len() as u32 != size {
        return Err("gzip data is damaged (size mismatch)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_keys_and_warnings() {
        let s = parse_user_data(
            "#cloud-config\npackages: [nginx]\nwrite_files:\n  - path: /etc/app.conf\n    content: |\n      port=1\n    permissions: '0600'\n    owner: root:root\n  - path: data/b.bin\n    encoding: b64\n    content: aGVsbG8=\n    append: true\nbootcmd:\n  - echo boot\nruncmd:\n  - echo one\n  - [python3, -c, 'print(1)']\n",
        )
        .unwrap();
        assert_eq!(
            s.files,
            vec![
                FileSpec {
                    path: "etc/app.conf".into(),
                    content: b"port=1\n".to_vec(),
                    mode: 0o600,
                    append: false
                },
                FileSpec {
                    path: "data/b.bin".into(),
                    content: b"hello".to_vec(),
                    mode: 0o644,
                    append: true
                },
            ]
        );
        assert_eq!(s.bootcmd, vec![Command::Shell("echo boot".into())]);
        assert_eq!(
            s.runcmd,
            vec![
                Command::Shell("echo one".into()),
                Command::Argv(vec!["python3".into(), "-c".into(), "print(1)".into()])
            ]
        );
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings.iter().any(|w| w.contains("`packages`")));
        assert!(s.warnings.iter().any(|w| w.contains("owner")));
    }

    #[test]
    fn escaping_paths_are_refused() {
        for p in [
            "../x",
            "a/../../x",
            "/../etc/passwd",
            "..",
            "/",
            ".occopus-run.sh",
            ".occopus/x",
        ] {
            let e = parse_user_data(&format!(
                "#cloud-config\nwrite_files:\n  - path: '{p}'\n    content: x\n"
            ))
            .unwrap_err();
            assert!(matches!(e, PluginError::InvalidConfig { .. }), "{p}: {e:?}");
            assert!(e.to_string().contains("write_files[0].path"), "{p}: {e}");
        }
        assert_eq!(node_path("./a//b/./c").unwrap(), "a/b/c");
        assert_eq!(
            node_path("/srv/www/index.html").unwrap(),
            "srv/www/index.html"
        );
    }

    #[test]
    fn permissions_forms() {
        use serde_json::json;
        assert_eq!(permissions(&json!("0644")).unwrap(), 0o644);
        assert_eq!(permissions(&json!("755")).unwrap(), 0o755);
        assert_eq!(permissions(&json!("0o700")).unwrap(), 0o700);
        assert_eq!(permissions(&json!(420)).unwrap(), 0o644);
        assert!(permissions(&json!("0999")).is_err());
        assert!(permissions(&json!(70000)).is_err());
        // Unquoted 0644 stays the string "0644" in our YAML reading: octal, as cloud-init.
        let s = parse_user_data("#cloud-config\nwrite_files:\n  - {path: x, permissions: 0640}\n")
            .unwrap();
        assert_eq!(s.files[0].mode, 0o640);
    }

    #[test]
    fn gzip_content() {
        // gzip of "hi\n" (no file name), base64.
        let gz = "H4sIAAAAAAACA8vI5AIAenpv7QMAAAA=";
        assert_eq!(decode(gz, "gz+b64").unwrap(), b"hi\n");
        assert_eq!(decode(gz, "gzip+base64").unwrap(), b"hi\n");
        assert!(decode("aGVsbG8=", "gzip+base64").is_err());
        assert!(decode("x", "rot13").is_err());
    }

    #[test]
    fn scripts_and_other_formats() {
        let s = parse_user_data("#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(s.files[0].path, ".occopus-user-data");
        assert_eq!(s.files[0].mode, 0o755);
        assert_eq!(
            s.runcmd,
            vec![Command::Argv(vec!["./.occopus-user-data".into()])]
        );
        assert!(parse_user_data("#include\nhttp://x\n").is_err());
        assert_eq!(parse_user_data("").unwrap(), Setup::default());
        assert_eq!(
            parse_user_data("#cloud-config\n").unwrap(),
            Setup::default()
        );
        let s = parse_user_data("runcmd: [true]\n").unwrap();
        assert_eq!(s.runcmd, vec![Command::Shell("true".into())]);
        assert_eq!(s.warnings.len(), 1);
        assert!(parse_user_data("#cloud-config\nruncmd: echo\n").is_err());
        assert!(parse_user_data("#cloud-config\nruncmd: [{a: 1}]\n").is_err());
        assert!(parse_user_data("#cloud-config\n- a\n").is_err());
    }
}
