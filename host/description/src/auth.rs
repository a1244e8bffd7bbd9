//! Authentication data (`auth_data.yaml`, spec §4): lists of credentials under `resource`
//! and `config_management`, each item being selector keys plus `auth_data`. A section picks
//! the one item whose selectors all equal the section's values.
//!
//! Owns: [`AuthData`] and selection. Credentials are wrapped in [`Secret`] from the moment
//! they are read; nothing here prints them (selectors and file positions only). Must not:
//! look for the file (the CLI's search path does) or hand credentials to plugins.

use crate::check::{Cx, index};
use crate::diag::{Code, Diagnostic};
use crate::source::Sources;
use crate::yaml::Ix;
use occopus_model::Secret;
use occopus_model::plugin::PluginKind;
use serde_json::{Map, Value};
use std::fmt;

/// Credentials read from an auth data file.
#[derive(Clone, Default)]
pub struct AuthData {
    items: Vec<AuthItem>,
}

/// One entry of `resource:` or `config_management:`.
#[derive(Clone, Debug)]
pub struct AuthItem {
    /// The section the entry is listed under.
    pub kind: PluginKind,
    /// Every key except `auth_data` (typically `type`, maybe `endpoint` or `name`).
    pub selector: Map<String, Value>,
    /// `auth_data`.
    pub credentials: Secret<Value>,
    /// `file:line` of the entry, for messages.
    pub location: String,
}

impl fmt::Debug for AuthData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

/// More than one auth data entry matches a section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} auth data entries match this `{}` section ({}); exactly one may match",
    locations.len(),
    section,
    locations.join(", ")
)]
pub struct AuthError {
    /// `resource` or `config_management`.
    pub section: &'static str,
    /// `file:line` of each matching entry.
    pub locations: Vec<String>,
}

impl AuthError {
    /// The diagnostic code of this problem.
    pub fn code(&self) -> Code {
        Code::AmbiguousCredentials
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        "add a selector that tells the entries apart (e.g. `endpoint` or `name`, equal to the section's value)"
    }
}

impl AuthData {
    /// The credentials for a rendered `resource` (`kind` = resource handler) or
    /// `config_management` (config manager) section: the `auth_data` of the single entry
    /// whose keys (all but `auth_data`) equal the section's values. No match is `Ok(None)`;
    /// health checkers have no credentials.
    pub fn select(
        &self,
        kind: PluginKind,
        section: &Map<String, Value>,
    ) -> Result<Option<Secret<Value>>, AuthError> {
        let found = self.matching(kind, section);
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.credentials.clone())),
            many => Err(AuthError {
                section: kind.section(),
                locations: many.iter().map(|i| i.location.clone()).collect(),
            }),
        }
    }

    /// Every entry whose selectors match `section`.
    pub fn matching(&self, kind: PluginKind, section: &Map<String, Value>) -> Vec<&AuthItem> {
        self.items
            .iter()
            .filter(|i| i.kind == kind && i.selector.iter().all(|(k, v)| section.get(k) == Some(v)))
            .collect()
    }

    /// All entries.
    pub fn items(&self) -> &[AuthItem] {
        &self.items
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Check an auth data document rooted at `root`.
    pub(crate) fn check(cx: &mut Cx<'_>, sources: &Sources, root: Ix) -> AuthData {
        let tree = cx.tree;
        let mut items = Vec::new();
        if tree.is_null(root) {
            return AuthData { items };
        }
        let Some(entries) = cx.map(root, "") else {
            return AuthData { items };
        };
        for (k, v) in entries {
            let key = tree.key_text(*k).unwrap_or_default();
            let kind = match key {
                "resource" => PluginKind::ResourceHandler,
                "config_management" => PluginKind::ConfigManager,
                other => {
                    cx.rep.emit(
                        Diagnostic::warning(
                            Code::UnknownKey,
                            format!("unknown section `{other}` in auth data (ignored)"),
                        )
                        .with_path(other)
                        .with_hint("auth data has `resource` and `config_management` lists"),
                        tree.span(*k),
                    );
                    continue;
                }
            };
            if tree.is_null(*v) {
                continue;
            }
            let Some(list) = cx.seq(*v, key) else {
                continue;
            };
            for (i, item) in list.iter().enumerate() {
                let path = index(key, i);
                if cx.map(*item, &path).is_none() {
                    continue;
                }
                let span = tree.span(*item);
                let Some(cred) = cx.required(
                    *item,
                    "auth_data",
                    &path,
                    "an auth data entry",
                    span,
                    "each entry is selector keys (e.g. `type: ec2`) plus `auth_data: {...}`",
                ) else {
                    continue;
                };
                let Some(Value::Object(mut selector)) = cx.json(*item, &path) else {
                    continue;
                };
                selector.remove("auth_data");
                let Some(credentials) = cx.json(cred, &format!("{path}.auth_data")) else {
                    continue;
                };
                items.push(AuthItem {
                    kind,
                    selector,
                    credentials: Secret::new(credentials),
                    location: format!("{}:{}", sources.display(span.file), span.line),
                });
            }
        }
        AuthData { items }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(kind: PluginKind, sel: Value, cred: &str, loc: &str) -> AuthItem {
        AuthItem {
            kind,
            selector: sel.as_object().cloned().unwrap_or_default(),
            credentials: Secret::new(json!({"secretkey": cred})),
            location: loc.into(),
        }
    }

    #[test]
    fn selection_is_subdictionary_matching_with_exactly_one_rule() {
        let auth = AuthData {
            items: vec![
                item(
                    PluginKind::ResourceHandler,
                    json!({"type": "ec2"}),
                    "s1",
                    "a.yaml:2",
                ),
                item(
                    PluginKind::ResourceHandler,
                    json!({"type": "nova", "name": "x"}),
                    "s2",
                    "a.yaml:5",
                ),
                item(
                    PluginKind::ResourceHandler,
                    json!({"type": "nova"}),
                    "s3",
                    "a.yaml:9",
                ),
                item(
                    PluginKind::ConfigManager,
                    json!({"type": "chef"}),
                    "s4",
                    "a.yaml:12",
                ),
            ],
        };
        let sec = |v: Value| v.as_object().cloned().unwrap_or_default();
        let got = auth
            .select(
                PluginKind::ResourceHandler,
                &sec(json!({"type": "ec2", "endpoint": "e"})),
            )
            .unwrap()
            .unwrap();
        assert_eq!(got.expose()["secretkey"], "s1");
        assert!(
            auth.select(PluginKind::ResourceHandler, &sec(json!({"type": "docker"})))
                .unwrap()
                .is_none()
        );
        assert!(
            auth.select(PluginKind::HealthChecker, &sec(json!({"type": "ec2"})))
                .unwrap()
                .is_none()
        );
        let err = auth
            .select(
                PluginKind::ResourceHandler,
                &sec(json!({"type": "nova", "name": "x"})),
            )
            .unwrap_err();
        assert_eq!(err.locations, vec!["a.yaml:5", "a.yaml:9"]);
        let shown = format!("{err} {err:?} {auth:?}");
        assert!(shown.contains("a.yaml:5, a.yaml:9"), "{shown}");
        for s in ["s1", "s2", "s3", "s4"] {
            assert!(!shown.contains(s), "secret {s} leaked: {shown}");
        }
    }
}
