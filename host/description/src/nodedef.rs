//! Node definition files (spec §2): `node_def:<type>` lists of implementations with their
//! `resource`, `contextualisation`, `config_management` and `health_check` sections,
//! checked by the loaded plugins' schemas where a plugin handles the type, else by
//! Occopus 1.10's own key lists.
//!
//! Owns: [`NodeDefs`] (what `occopus import` stores: imports inlined, cloud-configs turned
//! into text) and the checks of each section. Must not: look at the infrastructure
//! description (templates are checked per node elsewhere).

use crate::check::{Cx, field, index};
use crate::diag::{Code, Diagnostic, suggest};
use crate::schema::{self, KeySchema};
use crate::source::Span;
use crate::yaml::{Ix, emit, resolve::Resolved};
use occopus_model::plugin::{PluginHost, PluginKind};
use occopus_model::{Contextualisation, HealthCheckSpec, NodeImpl};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

const IMPL_KEYS: &[&str] = &[
    "resource",
    "contextualisation",
    "config_management",
    "health_check",
];
const PREFIX: &str = "node_def:";

/// Node definitions: for every node type, its implementations (the `node_def:<type>`
/// lists), validated, with `!yaml_import`/`!text_import` inlined and cloud-config mappings
/// turned into `#cloud-config` text. Serialises as `{"<type>": [<NodeImpl>, ...]}`, so it
/// can be stored by `occopus import` and loaded later with [`NodeDefSource::Stored`].
///
/// [`NodeDefSource::Stored`]: crate::NodeDefSource::Stored
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeDefs {
    types: BTreeMap<String, Vec<NodeImpl>>,
}

impl NodeDefs {
    /// The implementations of `type_name`.
    pub fn get(&self, type_name: &str) -> Option<&[NodeImpl]> {
        self.types.get(type_name).map(Vec::as_slice)
    }

    /// Every type name, sorted.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Set the implementations of a type (replacing what was there).
    pub fn insert(&mut self, type_name: impl Into<String>, impls: Vec<NodeImpl>) {
        self.types.insert(type_name.into(), impls);
    }

    /// Add every type of `other`, replacing types defined in both (as re-running
    /// `occopus-import` does).
    pub fn merge(&mut self, other: NodeDefs) {
        self.types.extend(other.types);
    }

    /// Number of node types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether no type is defined.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// Where node definitions were written: for diagnostics that point into the file.
#[derive(Default)]
pub(crate) struct DefOrigins {
    pub types: HashMap<String, TypeOrigin>,
}

pub(crate) struct TypeOrigin {
    /// The implementation mappings, by list position.
    pub impls: Vec<Ix>,
}

/// Checks node definitions; remembers which plugin warnings were given already.
pub(crate) struct DefChecker<'h> {
    pub host: Option<&'h dyn PluginHost>,
    warned: HashSet<(PluginKind, String)>,
}

enum Via {
    Plugin,
    Builtin,
    Neither,
}

impl<'h> DefChecker<'h> {
    pub fn new(host: Option<&'h dyn PluginHost>) -> Self {
        Self {
            host,
            warned: HashSet::new(),
        }
    }

    /// Check a node definition file rooted at `root`.
    pub fn check(&mut self, cx: &mut Cx<'_>, root: Ix) -> (NodeDefs, DefOrigins) {
        let tree = cx.tree;
        let mut defs = NodeDefs::default();
        let mut origins = DefOrigins::default();
        let shape = "a node definition file is a mapping of `'node_def:<type>'` to a list of implementations";
        if tree.is_null(root) {
            cx.rep.emit(
                Diagnostic::error(Code::WrongType, "the node definition file is empty")
                    .with_hint(shape),
                tree.span(root),
            );
            return (defs, origins);
        }
        let Some(entries) = tree.as_map(root) else {
            cx.rep.emit(
                Diagnostic::error(
                    Code::WrongType,
                    format!(
                        "node definitions must be a mapping, but this is {}",
                        tree.describe(root)
                    ),
                )
                .with_hint(shape),
                tree.span(root),
            );
            return (defs, origins);
        };
        for (k, v) in entries {
            let key = tree.key_text(*k).unwrap_or_default();
            let Some(type_name) = key.strip_prefix(PREFIX).filter(|t| !t.is_empty()) else {
                let hint = if key.contains("node_def") || key.contains("nodedef") {
                    let t = key.rsplit([':', '_']).next().unwrap_or("type");
                    format!("write `'node_def:{t}'` (with the colon, quoted)")
                } else {
                    format!("write `'node_def:{key}'` to define node type `{key}`")
                };
                cx.rep.emit(
                    Diagnostic::error(
                        Code::BadNodeDefKey,
                        format!("`{key}` is not a node definition key"),
                    )
                    .with_path(key)
                    .with_hint(hint),
                    tree.span(*k),
                );
                continue;
            };
            let path = format!("{PREFIX}{type_name}");
            let Some(items) = cx.seq(*v, &path) else {
                continue;
            };
            if items.is_empty() {
                cx.rep.emit(
                    Diagnostic::error(
                        Code::EmptyNodeDefinition,
                        format!("node type `{type_name}` has no implementation"),
                    )
                    .with_path(&path)
                    .with_hint("list at least one implementation with a `resource` section"),
                    tree.span(*k),
                );
            }
            let mut impls = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(imp) = self.check_impl(cx, *item, i, &index(&path, i)) {
                    impls.push(imp);
                }
            }
            origins.types.insert(
                type_name.to_string(),
                TypeOrigin {
                    impls: items.to_vec(),
                },
            );
            defs.types.insert(type_name.to_string(), impls);
        }
        (defs, origins)
    }

    fn check_impl(&mut self, cx: &mut Cx<'_>, ix: Ix, i: usize, path: &str) -> Option<NodeImpl> {
        let tree = cx.tree;
        cx.map(ix, path)?;
        cx.allowed_keys(ix, IMPL_KEYS, path, "an implementation");
        let (rkey, rix) = match tree.get(ix, "resource") {
            Some(e) => e,
            None => {
                cx.rep.emit(
                    Diagnostic::error(Code::MissingKey, "an implementation has no `resource`")
                        .with_path(field(path, "resource"))
                        .with_hint("`resource` says where and how the node is created, e.g. `resource: {type: ec2, ...}`"),
                    tree.span(ix),
                );
                return None;
            }
        };
        let resource = self.section(
            cx,
            PluginKind::ResourceHandler,
            rix,
            &field(path, "resource"),
            tree.span(rkey),
            schema::RESOURCES,
        )?;

        let contextualisation = match tree.get(ix, "contextualisation") {
            Some((k, v)) if !tree.is_null(v) => {
                check_context(cx, v, &field(path, "contextualisation"), tree.span(k))
                    .unwrap_or_default()
            }
            _ => Contextualisation::default(),
        };

        let config_management = match tree.get(ix, "config_management") {
            Some((k, v)) if !tree.is_null(v) => self.section(
                cx,
                PluginKind::ConfigManager,
                v,
                &field(path, "config_management"),
                tree.span(k),
                schema::CONFIG_MANAGERS,
            ),
            _ => None,
        };

        let health_check = match tree.get(ix, "health_check") {
            Some((k, v)) if !tree.is_null(v) => self
                .health(cx, v, &field(path, "health_check"), tree.span(k))
                .unwrap_or_default(),
            _ => HealthCheckSpec::occopus_default(),
        };

        Some(NodeImpl {
            index: i,
            resource,
            contextualisation,
            config_management,
            health_check,
        })
    }

    /// A plugin-routed section (`resource`, `config_management`): a mapping with `type`,
    /// checked by the plugin's schema or the built-in table.
    fn section(
        &mut self,
        cx: &mut Cx<'_>,
        kind: PluginKind,
        ix: Ix,
        path: &str,
        key_span: Span,
        table: &'static [KeySchema],
    ) -> Option<Map<String, Value>> {
        let tree = cx.tree;
        cx.map(ix, path)?;
        let what_hint = match kind {
            PluginKind::ResourceHandler => {
                "e.g. `type: ec2`; the type selects the resource handler plugin"
            }
            _ => "e.g. `type: chef`; the type selects the config manager plugin",
        };
        let tix = cx.required(
            ix,
            "type",
            path,
            &format!("`{}`", kind.section()),
            key_span,
            what_hint,
        )?;
        let type_name = cx.string(tix, &field(path, "type"))?.to_string();
        let Value::Object(json) = cx.json(ix, path)? else {
            return None;
        };
        let builtin = schema::find(table, &type_name);
        let via = self.via_host(
            cx,
            kind,
            &type_name,
            ix,
            &Value::Object(json.clone()),
            path,
            key_span,
            tree.span(tix),
            builtin.is_some(),
            schema::names(table),
        );
        if let (Via::Builtin, Some(s)) = (via, builtin) {
            let what = format!("`{}` of type `{type_name}`", kind.section());
            schema::check(cx, s, ix, path, &what, key_span);
        }
        Some(json)
    }

    /// Route a section to the plugin that handles its type, if a host is given.
    #[allow(clippy::too_many_arguments)]
    fn via_host(
        &mut self,
        cx: &mut Cx<'_>,
        kind: PluginKind,
        type_name: &str,
        ix: Ix,
        json: &Value,
        path: &str,
        key_span: Span,
        type_span: Span,
        has_builtin: bool,
        builtin_names: impl Iterator<Item = &'static str>,
    ) -> Via {
        let tree = cx.tree;
        let Some(host) = self.host else {
            if has_builtin {
                return Via::Builtin;
            }
            if self.warned.insert((kind, type_name.to_string())) {
                let names: Vec<&str> = builtin_names.collect();
                let hint = suggest(
                    type_name,
                    names.iter().copied(),
                    &format!(
                        "Occopus 1.10 knows {}; other types need a {kind} plugin",
                        names.join(", ")
                    ),
                );
                cx.rep.emit(
                    Diagnostic::warning(
                        Code::UnknownType,
                        format!(
                            "`{type_name}` is not a {} type Occopus 1.10 knows",
                            kind.section()
                        ),
                    )
                    .with_path(field(path, "type"))
                    .with_hint(hint),
                    type_span,
                );
            }
            return Via::Neither;
        };
        match host.check_section(kind, type_name, json, true) {
            Ok(errors) => {
                for e in errors {
                    let at = match e.path.as_str() {
                        "" | "/" => key_span,
                        p => tree.pointer(ix, p).map_or(key_span, |x| tree.span(x)),
                    };
                    cx.rep.emit(
                        Diagnostic::error(Code::PluginSchema, e.message.clone())
                            .with_path(pointer_path(path, &e.path))
                            .with_hint(format!(
                                "the {kind} plugin for `{type_name}` rejects this; see `occopus plugins inspect` for its schema"
                            )),
                        at,
                    );
                }
                Via::Plugin
            }
            Err(np) => {
                let first = self.warned.insert((kind, type_name.to_string()));
                if has_builtin {
                    if first {
                        cx.rep.emit(
                            Diagnostic::warning(
                                Code::NoPlugin,
                                format!("no {kind} plugin is loaded for `{type_name}`"),
                            )
                            .with_path(field(path, "type"))
                            .with_hint("checked against Occopus 1.10's key list only; add the plugin's directory with `--plugin-dir` to deploy it"),
                            type_span,
                        );
                    }
                    Via::Builtin
                } else {
                    if first {
                        let mut known: Vec<String> = np.known.clone();
                        known.extend(builtin_names.map(String::from));
                        known.sort_unstable();
                        known.dedup();
                        let hint = suggest(
                            type_name,
                            known.iter().map(String::as_str),
                            &if np.known.is_empty() {
                                "no plugins of this kind are loaded; check `--plugin-dir`"
                                    .to_string()
                            } else {
                                format!("loaded types: {}", np.known.join(", "))
                            },
                        );
                        cx.rep.emit(
                            Diagnostic::error(
                                Code::NoPlugin,
                                format!("no {kind} plugin handles type `{type_name}`"),
                            )
                            .with_path(field(path, "type"))
                            .with_hint(hint),
                            type_span,
                        );
                    }
                    Via::Neither
                }
            }
        }
    }

    fn health(
        &mut self,
        cx: &mut Cx<'_>,
        ix: Ix,
        path: &str,
        key_span: Span,
    ) -> Option<HealthCheckSpec> {
        let tree = cx.tree;
        cx.map(ix, path)?;
        let type_name = match tree.get(ix, "type") {
            Some((_, t)) => cx.string(t, &field(path, "type"))?.to_string(),
            None => "basic".to_string(),
        };
        let Value::Object(written) = cx.json(ix, path)? else {
            return None;
        };
        let type_span = tree.get(ix, "type").map_or(key_span, |(_, t)| tree.span(t));
        let via = self.via_host(
            cx,
            PluginKind::HealthChecker,
            &type_name,
            ix,
            &Value::Object(written.clone()),
            path,
            key_span,
            type_span,
            type_name == "basic",
            ["basic"].into_iter(),
        );
        if matches!(via, Via::Builtin) {
            check_basic_health(cx, ix, path);
        }
        // `type` first, then Occopus's `ping: true` default, then what was written.
        let mut section = Map::new();
        section.insert("type".into(), Value::from(type_name.clone()));
        if type_name == "basic" && !written.get("ping").is_some_and(Value::is_boolean) {
            section.insert("ping".into(), Value::Bool(true));
        }
        for (k, v) in written {
            if k != "type" && !(k == "ping" && section.contains_key("ping") && !v.is_boolean()) {
                section.insert(k, v);
            }
        }
        let timeout_secs = section
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(HealthCheckSpec::DEFAULT_TIMEOUT_SECS);
        Some(HealthCheckSpec {
            type_name,
            section,
            timeout_secs,
        })
    }
}

/// `/a/0/b` below `path` as `path.a[0].b`.
pub(crate) fn pointer_path(path: &str, pointer: &str) -> String {
    let mut out = path.to_string();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            out = field(&out, &seg);
        }
    }
    out
}

fn is_template(cx: &Cx<'_>, ix: Ix) -> bool {
    cx.tree
        .as_str(ix)
        .is_some_and(occopus_template::is_template)
}

fn check_basic_health(cx: &mut Cx<'_>, ix: Ix, path: &str) {
    let tree = cx.tree;
    cx.allowed_keys(
        ix,
        schema::HEALTH_BASIC_KEYS,
        path,
        "a `basic` health check",
    );
    if let Some((_, v)) = tree.get(ix, "ping")
        && !matches!(tree.as_scalar(v).map(|s| s.value), Some(Resolved::Bool(_)))
    {
        cx.wrong_type(v, &field(path, "ping"), "true or false");
    }
    if let Some((_, v)) = tree.get(ix, "timeout")
        && !matches!(tree.as_scalar(v).map(|s| s.value), Some(Resolved::Int(i)) if i >= 0)
    {
        cx.wrong_type(v, &field(path, "timeout"), "a whole number of seconds");
    }
    let list = |cx: &mut Cx<'_>, key: &str| -> Vec<Ix> {
        match tree.get(ix, key) {
            Some((_, v)) if !tree.is_null(v) => cx
                .seq(v, &field(path, key))
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    for (i, p) in list(cx, "ports").into_iter().enumerate() {
        let ok = matches!(tree.as_scalar(p).map(|s| s.value), Some(Resolved::Int(n)) if (0..=65535).contains(&n))
            || is_template(cx, p);
        if !ok {
            cx.wrong_type(p, &index(&field(path, "ports"), i), "a port number");
        }
    }
    for (i, u) in list(cx, "urls").into_iter().enumerate() {
        cx.string(u, &index(&field(path, "urls"), i));
    }
    for (i, m) in list(cx, "mysqldbs").into_iter().enumerate() {
        let mpath = index(&field(path, "mysqldbs"), i);
        if cx.map(m, &mpath).is_none() {
            continue;
        }
        cx.allowed_keys(m, &["name", "user", "pass"], &mpath, "a `mysqldbs` entry");
        for key in ["name", "user", "pass"] {
            if let Some(v) = cx.required(
                m,
                key,
                &mpath,
                "a `mysqldbs` entry",
                tree.span(m),
                "each database is `{name: ..., user: ..., pass: ...}`",
            ) && tree.as_scalar(v).is_none()
            {
                cx.wrong_type(v, &field(&mpath, key), "a string");
            }
        }
    }
}

fn check_context(cx: &mut Cx<'_>, ix: Ix, path: &str, key_span: Span) -> Option<Contextualisation> {
    let tree = cx.tree;
    cx.map(ix, path)?;
    let tix = cx.required(
        ix,
        "type",
        path,
        "`contextualisation`",
        key_span,
        "`type` is `cloudinit` (VM user data), `docker` (container env/command) or `basic`",
    )?;
    let type_name = cx.string(tix, &field(path, "type"))?;
    let Some(s) = schema::find(schema::CONTEXTUALISATIONS, type_name) else {
        let hint = suggest(
            type_name,
            schema::names(schema::CONTEXTUALISATIONS),
            "contextualisation types are cloudinit, docker and basic",
        );
        cx.rep.emit(
            Diagnostic::error(
                Code::UnknownType,
                format!("unknown contextualisation type `{type_name}`"),
            )
            .with_path(field(path, "type"))
            .with_hint(hint),
            tree.span(tix),
        );
        return None;
    };
    schema::check(
        cx,
        s,
        ix,
        path,
        &format!("contextualisation of type `{type_name}`"),
        key_span,
    );
    let opt_json = |cx: &mut Cx<'_>, key: &str| -> Value {
        match tree.get(ix, key) {
            Some((_, v)) => cx.json(v, &field(path, key)).unwrap_or(Value::Null),
            None => Value::Null,
        }
    };
    match type_name {
        "cloudinit" => {
            let (_, v) = tree.get(ix, "context_template")?;
            let cpath = field(path, "context_template");
            let context_template = if let Some(text) = tree.as_str(v) {
                text.to_string()
            } else if tree.as_map(v).is_some() {
                match emit::cloud_config(tree, v) {
                    Ok(t) => t,
                    Err(_) => {
                        cx.json(v, &cpath);
                        return None;
                    }
                }
            } else {
                cx.wrong_type(v, &cpath, "a string or a mapping (a cloud-config)");
                return None;
            };
            Some(Contextualisation::Cloudinit {
                context_template,
                attributes: opt_json(cx, "attributes"),
            })
        }
        "docker" => {
            let mut env = Vec::new();
            if let Some((_, v)) = tree.get(ix, "env") {
                let epath = field(path, "env");
                if !tree.is_null(v) {
                    for (i, item) in cx.seq(v, &epath).unwrap_or_default().iter().enumerate() {
                        match tree.as_scalar(*item) {
                            Some(s) if s.value != Resolved::Null => env.push(s.text.clone()),
                            _ => cx.wrong_type(*item, &index(&epath, i), "a string `NAME=value`"),
                        }
                    }
                }
            }
            let command = match tree.get(ix, "command") {
                Some((_, v)) if !tree.is_null(v) => {
                    let cpath = field(path, "command");
                    if let Some(items) = tree.as_seq(v) {
                        for (i, item) in items.iter().enumerate() {
                            if tree.as_scalar(*item).is_none() {
                                cx.wrong_type(*item, &index(&cpath, i), "a string");
                            }
                        }
                    } else if tree.as_scalar(v).is_none() {
                        cx.wrong_type(v, &cpath, "a string or a list of strings");
                    }
                    cx.json(v, &cpath)
                }
                _ => None,
            };
            Some(Contextualisation::Docker {
                env,
                command,
                context_variables: opt_json(cx, "context_variables"),
            })
        }
        _ => Some(Contextualisation::Basic {
            attributes: opt_json(cx, "attributes"),
        }),
    }
}
