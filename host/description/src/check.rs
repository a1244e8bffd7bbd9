//! Small building blocks shared by the validators: type expectations, key whitelists,
//! required keys, all reporting with the field path and a did-you-mean.
//!
//! Owns: the wording of the generic messages (`wrong-type`, `unknown-key`, `missing-key`).
//! Must not: know which keys a particular section allows (callers pass them).

use crate::diag::{Code, Diagnostic, suggest};
use crate::report::Reporter;
use crate::source::Span;
use crate::yaml::{Ix, Kind, Tree};

/// A validation context: the tree being checked and where problems go.
pub(crate) struct Cx<'a> {
    pub tree: &'a Tree,
    pub rep: &'a mut Reporter,
}

/// `a.b` / `a[1]` field path helpers.
pub(crate) fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The last segment of a path, for messages (`nodes[1].scaling` -> `scaling`).
pub(crate) fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

impl<'a> Cx<'a> {
    pub fn wrong_type(&mut self, ix: Ix, path: &str, expected: &str) {
        if matches!(self.tree.kind(ix), Kind::Invalid) {
            // Could not be read (a failed import, ...): reported already.
            return;
        }
        let found = self.tree.describe(ix);
        self.rep.emit(
            Diagnostic::error(
                Code::WrongType,
                format!("`{}` must be {expected}, but it is {found}", leaf(path)),
            )
            .with_path(path),
            self.tree.span(ix),
        );
    }

    /// The entries of a mapping, or a `wrong-type` error.
    pub fn map(&mut self, ix: Ix, path: &str) -> Option<&'a [(Ix, Ix)]> {
        let tree: &'a Tree = self.tree;
        match tree.as_map(ix) {
            Some(m) => Some(m),
            None => {
                self.wrong_type(ix, path, "a mapping");
                None
            }
        }
    }

    /// The items of a list, or a `wrong-type` error.
    pub fn seq(&mut self, ix: Ix, path: &str) -> Option<&'a [Ix]> {
        let tree: &'a Tree = self.tree;
        match tree.as_seq(ix) {
            Some(s) => Some(s),
            None => {
                self.wrong_type(ix, path, "a list");
                None
            }
        }
    }

    /// A string, or a `wrong-type` error.
    pub fn string(&mut self, ix: Ix, path: &str) -> Option<&'a str> {
        let tree: &'a Tree = self.tree;
        match tree.as_str(ix) {
            Some(s) => Some(s),
            None => {
                self.wrong_type(ix, path, "a string");
                None
            }
        }
    }

    /// Report every key of `map` not in `allowed` (with a did-you-mean).
    pub fn allowed_keys(&mut self, map: Ix, allowed: &[&str], path: &str, what: &str) {
        let tree: &'a Tree = self.tree;
        let Some(entries) = tree.as_map(map) else {
            return;
        };
        for (k, _) in entries {
            let Some(key) = tree.key_text(*k) else {
                self.wrong_type(*k, path, "a plain key");
                continue;
            };
            if allowed.contains(&key) {
                continue;
            }
            self.unknown_key(*k, key, allowed, path, what, None);
        }
    }

    /// Report `key` (written at `k`) as not allowed in `what`: with `why` when Occopus
    /// rejects it for a known reason, else with a did-you-mean and the allowed keys.
    pub fn unknown_key(
        &mut self,
        k: Ix,
        key: &str,
        allowed: &[&str],
        path: &str,
        what: &str,
        why: Option<&str>,
    ) {
        let hint = match why {
            Some(w) => w.to_string(),
            None => suggest(
                key,
                allowed.iter().copied(),
                &format!("{what} takes: {}", allowed.join(", ")),
            ),
        };
        self.rep.emit(
            Diagnostic::error(Code::UnknownKey, format!("unknown key `{key}` in {what}"))
                .with_path(field(path, key))
                .with_hint(hint),
            self.tree.span(k),
        );
    }

    /// The value of a required key, or a `missing-key` error at `anchor`.
    pub fn required(
        &mut self,
        map: Ix,
        key: &str,
        path: &str,
        what: &str,
        anchor: Span,
        hint: &str,
    ) -> Option<Ix> {
        match self.tree.get(map, key) {
            Some((_, v)) => Some(v),
            None => {
                let mut d = Diagnostic::error(Code::MissingKey, format!("{what} has no `{key}`"))
                    .with_path(field(path, key));
                if !hint.is_empty() {
                    d = d.with_hint(hint);
                }
                self.rep.emit(d, anchor);
                None
            }
        }
    }

    /// JSON of a node, or a `too-large` error.
    pub fn json(&mut self, ix: Ix, path: &str) -> Option<serde_json::Value> {
        match self.tree.to_json(ix) {
            Ok(v) => Some(v),
            Err(_) => {
                self.rep.emit(
                    Diagnostic::error(
                        Code::TooLarge,
                        "this value expands to too much data (aliases nested too deeply)",
                    )
                    .with_path(path),
                    self.tree.span(ix),
                );
                None
            }
        }
    }
}
