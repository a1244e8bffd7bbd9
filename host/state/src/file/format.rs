//! The file store's on-disk format (version [`FORMAT_VERSION`]): JSON documents with a
//! `format` field, and JSON-lines files (journal, snapshot) whose first line is a header.
//!
//! Reading tolerates exactly one kind of damage: a torn last line of a journal (a crash
//! in the middle of an append). Anything else that does not parse is reported with the
//! file and line.

use crate::{FORMAT_VERSION, Record, StateError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// First line of a journal or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub format: u64,
    /// `journal` or `snapshot`.
    pub kind: String,
    /// Journal: its generation. Snapshot: the generation of the journal that continues it
    /// (the snapshot covers every older generation).
    #[serde(rename = "gen")]
    pub generation: u64,
}

impl Header {
    pub fn line(kind: &str, generation: u64) -> Vec<u8> {
        let h = Header {
            format: u64::from(FORMAT_VERSION),
            kind: kind.into(),
            generation,
        };
        let mut v = serde_json::to_vec(&h).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Check the `format` field of a parsed document.
pub(crate) fn check_format(path: &Path, line: Option<usize>, v: &Value) -> Result<(), StateError> {
    match v.get("format").and_then(Value::as_u64) {
        Some(f) if f == u64::from(FORMAT_VERSION) => Ok(()),
        Some(found) => Err(StateError::UnknownFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        }),
        None => Err(StateError::Corrupt {
            path: path.to_path_buf(),
            line,
            message: "no `format` field".into(),
        }),
    }
}

/// Serialize a document (a struct or map) with `"format": 1` as its first field.
pub(crate) fn document<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    let body = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
        path: "<document>".into(),
        line: None,
        message: e.to_string(),
    })?;
    let mut out = format!("{{\"format\":{FORMAT_VERSION}").into_bytes();
    match body.strip_prefix(b"{") {
        Some(b"}") => out.push(b'}'),
        Some(rest) => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        None => {
            return Err(StateError::Corrupt {
                path: "<document>".into(),
                line: None,
                message: "a document must be a JSON object".into(),
            });
        }
    }
    out.push(b'\n');
    Ok(out)
}

/// Only the `format` field of a document (the rest is skipped, not built).
#[derive(Deserialize)]
struct FormatField {
    format: Option<u64>,
}

/// Read a document written by [`document`]; `None` if the file does not exist.
pub(crate) fn read_document<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, &e)),
    };
    let corrupt = |message: String| StateError::Corrupt {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let f: FormatField = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let v = match f.format {
        Some(n) => Value::from(n),
        None => Value::Null,
    };
    let mut probe = Map::new();
    probe.insert("format".into(), v);
    check_format(path, None, &Value::Object(probe))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Write a file so that readers see the old or the new content, never a mix: write a
/// temporary file, sync it, rename it over the target, sync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| StateError::io("create", &tmp, &e))?;
    f.write_all(bytes)
        .map_err(|e| StateError::io("write", &tmp, &e))?;
    if sync {
        f.sync_all().map_err(|e| StateError::io("sync", &tmp, &e))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(|e| StateError::io("rename", &tmp, &e))?;
    if sync && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Make a directory entry change (create, rename, remove) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("sync directory", dir, &e))
}

/// What [`parse_lines`] found besides the records.
pub(crate) struct LinesFile {
    pub header: Header,
    /// Records read.
    #[cfg_attr(not(test), allow(dead_code))]
    pub records: usize,
    /// Bytes up to the end of the last good line; a torn tail starts here.
    pub valid_len: u64,
    /// Whether a torn last line was found (and ignored).
    #[cfg_attr(not(test), allow(dead_code))]
    pub torn: bool,
}

/// Parse a journal (`tolerate_torn_tail`) or snapshot, handing each record and its exact
/// line (newline included) to `on_record` as it is read. The header must be of kind
/// `expect_kind` (and generation `expect_gen`, if given). An empty file, or one whose
/// only line is torn, yields `None` (a journal created just before a crash).
pub(crate) fn parse_lines(
    path: &Path,
    bytes: &[u8],
    expect_kind: &str,
    expect_gen: Option<u64>,
    tolerate_torn_tail: bool,
    on_record: &mut dyn FnMut(Record, &[u8]),
) -> Result<Option<LinesFile>, StateError> {
    let corrupt = |line: usize, message: String| StateError::Corrupt {
        path: path.to_path_buf(),
        line: Some(line),
        message,
    };
    let mut pos = 0usize;
    let mut header: Option<Header> = None;
    let mut records = 0usize;
    let mut line_no = 0usize;
    let mut torn = false;
    while pos < bytes.len() {
        line_no += 1;
        let rest = &bytes[pos..];
        let (text, next, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], pos + i + 1, true),
            None => (rest, bytes.len(), false),
        };
        let is_last = next >= bytes.len();
        let tolerated = is_last && tolerate_torn_tail;
        if !complete {
            if tolerated {
                torn = true;
                break;
            }
            return Err(corrupt(line_no, "line is incomplete".into()));
        }
        if header.is_none() {
            let value: Value = match serde_json::from_slice(text) {
                Ok(v) => v,
                Err(_) if tolerated => {
                    torn = true;
                    break;
                }
                Err(e) => return Err(corrupt(line_no, e.to_string())),
            };
            check_format(path, Some(line_no), &value)?;
            let h: Header =
                serde_json::from_value(value).map_err(|e| corrupt(line_no, e.to_string()))?;
            if h.kind != expect_kind {
                return Err(corrupt(
                    line_no,
                    format!("expected a {expect_kind} header, found `{}`", h.kind),
                ));
            }
            if let Some(g) = expect_gen
                && h.generation != g
            {
                return Err(corrupt(
                    line_no,
                    format!("generation {} where {g} was expected", h.generation),
                ));
            }
            header = Some(h);
        } else {
            match serde_json::from_slice::<Record>(text) {
                Ok(record) => {
                    records += 1;
                    on_record(record, &bytes[pos..next]);
                }
                Err(_) if tolerated => {
                    torn = true;
                    break;
                }
                Err(e) => return Err(corrupt(line_no, e.to_string())),
            }
        }
        pos = next;
    }
    Ok(header.map(|header| LinesFile {
        header,
        records,
        valid_len: pos as u64,
        torn,
    }))
}

/// Read a whole file; `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("read", path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(lines: &[&str]) -> Vec<u8> {
        let mut b = Header::line("journal", 1);
        for l in lines {
            b.extend_from_slice(l.as_bytes());
        }
        b
    }

    const MARK: &str = "{\"rec\":\"mark\",\"key\":\"k\",\"value\":1}\n";

    #[test]
    fn torn_tail_is_ignored_but_middle_damage_is_not() {
        let p = Path::new("j");
        let parse = |b: &[u8], kind: &str, tolerate: bool| {
            parse_lines(p, b, kind, None, tolerate, &mut |_, _| {})
        };
        let ok = parse(&journal(&[MARK, MARK]), "journal", true)
            .unwrap()
            .unwrap();
        assert_eq!((ok.records, ok.torn), (2, false));
        let torn = journal(&[MARK, "{\"rec\":\"ma"]);
        let t = parse(&torn, "journal", true).unwrap().unwrap();
        assert_eq!((t.records, t.torn), (1, true));
        assert_eq!(t.valid_len as usize, journal(&[MARK]).len());
        assert!(parse(&torn, "snapshot", false).is_err());
        let bad = journal(&["garbage\n", MARK]);
        let e = parse(&bad, "journal", true).err().unwrap();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(parse(b"{\"form", "journal", true).unwrap().is_none());
        let e = parse_lines(p, &journal(&[]), "journal", Some(2), true, &mut |_, _| {});
        assert!(
            e.err()
                .unwrap()
                .to_string()
                .contains("generation 1 where 2")
        );
    }

    #[test]
    fn unknown_versions_are_named() {
        let e = parse_lines(
            Path::new("j"),
            b"{\"format\":7,\"kind\":\"journal\",\"gen\":1}\n",
            "journal",
            None,
            true,
            &mut |_, _| {},
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, StateError::UnknownFormat { found: 7, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("format 7"), "{e}");
    }
}
