//! The infrastructure description (spec §1): top-level keys, nodes, scaling, variables and
//! dependencies, checked the way Occopus 1.10's schema checker and compiler do, plus what
//! Occopus got wrong silently (plain-name dependencies are honoured here; a missing
//! `user_id` is a warning instead of a crash).
//!
//! Owns: [`InfraDraft`], the checked description before node definitions are attached.
//! Must not: look at node definitions or templates.

use crate::check::{Cx, field, index};
use crate::diag::{Code, Diagnostic, did_you_mean, name_list};
use crate::source::Span;
use crate::yaml::{Ix, resolve::Resolved};
use occopus_model::{Scaling, is_valid_name};
use serde_json::{Map, Value};
use std::collections::HashMap;

const TOP_KEYS: &[&str] = &[
    "user_id",
    "infra_name",
    "nodes",
    "dependencies",
    "variables",
];
const NODE_KEYS: &[&str] = &["name", "type", "scaling", "filter", "variables"];

/// The description, checked, before node definitions are attached.
#[derive(Debug, Default)]
pub(crate) struct InfraDraft {
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub variables: Map<String, Value>,
    pub nodes: Vec<NodeDraft>,
    pub edges: Vec<EdgeDraft>,
}

#[derive(Debug)]
pub(crate) struct NodeDraft {
    pub name: String,
    /// `nodes[i]`
    pub path: String,
    /// The node's `name` value.
    pub name_span: Span,
    pub type_name: Option<String>,
    pub type_span: Option<Span>,
    pub scaling: Scaling,
    pub filter: Map<String, Value>,
    pub filter_span: Option<Span>,
    /// Infra-level variables deep-merged with the node's own.
    pub variables: Value,
}

#[derive(Debug)]
pub(crate) struct EdgeDraft {
    pub dependent: usize,
    pub dependee: usize,
    pub mappings: Vec<Value>,
    /// Where the dependency is written (`None` for implicit edges).
    pub span: Option<Span>,
    /// For implicit edges: where the template calls `getip` and the call, for messages.
    pub implicit: Option<ImplicitWhy>,
}

#[derive(Debug, Clone)]
pub(crate) struct ImplicitWhy {
    pub call: String,
    pub span: Option<Span>,
}

/// Deep-merge `over` into `base` (mappings merge recursively; anything else: `over` wins).
pub(crate) fn deep_merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

/// Check the description rooted at `root`.
pub(crate) fn check(cx: &mut Cx<'_>, root: Ix) -> InfraDraft {
    let mut draft = InfraDraft::default();
    let tree = cx.tree;
    if tree.is_null(root) {
        cx.rep.emit(
            Diagnostic::error(Code::WrongType, "the infrastructure description is empty")
                .with_hint("it is a mapping with `infra_name`, `user_id`, `nodes` and optionally `dependencies` and `variables`"),
            tree.span(root),
        );
        return draft;
    }
    if tree.as_map(root).is_none() {
        cx.rep.emit(
            Diagnostic::error(
                Code::WrongType,
                format!("the infrastructure description must be a mapping, but it is {}", tree.describe(root)),
            )
            .with_hint("it is a mapping with `infra_name`, `user_id`, `nodes` and optionally `dependencies` and `variables`"),
            tree.span(root),
        );
        return draft;
    }
    let root_span = tree.span(root);
    cx.allowed_keys(root, TOP_KEYS, "", "the infrastructure description");

    if let Some(v) = cx.required(
        root,
        "infra_name",
        "",
        "the infrastructure description",
        root_span,
        "name the infrastructure: `infra_name: my-infra` (letters, digits and `-`)",
    ) && let Some(s) = cx.string(v, "infra_name")
    {
        if !is_valid_name(s) {
            invalid_name(cx, v, "infra_name", s, "infra_name");
        }
        draft.name = Some(s.to_string());
    }

    match tree.get(root, "user_id") {
        None => cx.rep.emit(
            Diagnostic::warning(Code::MissingUserId, "the description has no `user_id`")
                .with_path("user_id")
                .with_hint("Occopus 1.10 stops with an error without it; add `user_id: you@example.com` to keep the file usable there"),
            Span::file_start(root_span.file),
        ),
        Some((_, v)) => match tree.as_scalar(v) {
            Some(s) if matches!(s.value, Resolved::Str | Resolved::Int(_) | Resolved::Float(_)) => {
                draft.user_id = Some(s.text.clone());
            }
            _ => cx.wrong_type(v, "user_id", "a string"),
        },
    }

    if let Some((_, v)) = tree.get(root, "variables")
        && let Some(Value::Object(m)) = check_variables(cx, v, "variables")
    {
        draft.variables = m;
    }
    let infra_vars = Value::Object(draft.variables.clone());

    // Nodes.
    let mut by_ix: HashMap<Ix, usize> = HashMap::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    if let Some(v) = cx.required(
        root,
        "nodes",
        "",
        "the infrastructure description",
        root_span,
        "list the nodes: `nodes: [{name: web, type: web_node}]`",
    ) {
        if tree.is_null(v) {
            cx.rep.emit(
                Diagnostic::warning(Code::NoNodes, "the description has no nodes")
                    .with_path("nodes"),
                tree.span(v),
            );
        } else if let Some(items) = cx.seq(v, "nodes") {
            if items.is_empty() {
                cx.rep.emit(
                    Diagnostic::warning(Code::NoNodes, "the description has no nodes")
                        .with_path("nodes"),
                    tree.span(v),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let path = index("nodes", i);
                if let Some(node) = check_node(cx, *item, &path, &infra_vars) {
                    if let Some(&first) = by_name.get(&node.name) {
                        let first_line = draft.nodes[first].name_span.line;
                        cx.rep.emit(
                            Diagnostic::error(
                                Code::DuplicateNode,
                                format!("two nodes are named `{}`", node.name),
                            )
                            .with_path(field(&path, "name"))
                            .with_hint(format!(
                                "the first is on line {first_line}; node names must be unique"
                            )),
                            node.name_span,
                        );
                        continue;
                    }
                    let n = draft.nodes.len();
                    by_ix.insert(tree.resolve(*item), n);
                    by_name.insert(node.name.clone(), n);
                    draft.nodes.push(node);
                }
            }
        }
    }

    // Dependencies.
    if let Some((_, v)) = tree.get(root, "dependencies")
        && !tree.is_null(v)
        && let Some(items) = cx.seq(v, "dependencies")
    {
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let path = index("dependencies", i);
            let Some(edge) = check_dependency(cx, *item, &path, &by_ix, &by_name, &draft.nodes)
            else {
                continue;
            };
            match seen.get(&(edge.dependent, edge.dependee)) {
                Some(&first) => {
                    let d = &draft.nodes[edge.dependent].name;
                    let e = &draft.nodes[edge.dependee].name;
                    let first_line = draft.edges[first].span.map_or(0, |s| s.line);
                    cx.rep.emit(
                        Diagnostic::warning(
                            Code::DuplicateDependency,
                            format!("`{d}` already depends on `{e}` (line {first_line})"),
                        )
                        .with_path(path)
                        .with_hint("remove one of them; their `mappings` are combined"),
                        edge.span,
                    );
                    draft.edges[first].mappings.extend(edge.mappings);
                }
                None => {
                    seen.insert((edge.dependent, edge.dependee), draft.edges.len());
                    draft.edges.push(edge);
                }
            }
        }
    }
    draft
}

fn invalid_name(cx: &mut Cx<'_>, ix: Ix, path: &str, value: &str, what: &str) {
    let suggestion: String = value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let mut hint = String::from("use 1 to 63 letters, digits or `-` (no `_`, `.` or spaces)");
    if !suggestion.is_empty() && suggestion != value && is_valid_name(&suggestion) {
        hint.push_str(&format!(", e.g. `{suggestion}`"));
    }
    cx.rep.emit(
        Diagnostic::error(
            Code::InvalidName,
            format!("`{value}` is not a valid {what}"),
        )
        .with_path(path)
        .with_hint(hint),
        cx.tree.span(ix),
    );
}

fn check_variables(cx: &mut Cx<'_>, v: Ix, path: &str) -> Option<Value> {
    if cx.tree.is_null(v) {
        return Some(Value::Object(Map::new()));
    }
    cx.map(v, path)?;
    cx.json(v, path)
}

fn check_node(cx: &mut Cx<'_>, ix: Ix, path: &str, infra_vars: &Value) -> Option<NodeDraft> {
    let tree = cx.tree;
    cx.map(ix, path)?;
    let span = tree.span(ix);
    cx.allowed_keys(ix, NODE_KEYS, path, "a node");

    let name_ix = cx.required(
        ix,
        "name",
        path,
        "a node",
        span,
        "every node needs a unique `name`",
    );
    let name = name_ix.and_then(|v| {
        let s = cx.string(v, &field(path, "name"))?;
        if !is_valid_name(s) {
            invalid_name(cx, v, &field(path, "name"), s, "node name");
        }
        Some(s.to_string())
    });

    let type_ix = cx.required(
        ix,
        "type",
        path,
        "a node",
        span,
        "`type: x` selects the node definition `node_def:x`",
    );
    let type_name = type_ix.and_then(|v| cx.string(v, &field(path, "type")).map(str::to_string));

    let scaling = match tree.get(ix, "scaling") {
        Some((_, v)) if !tree.is_null(v) => check_scaling(cx, v, &field(path, "scaling")),
        _ => Scaling::default(),
    };

    let mut filter = Map::new();
    let mut filter_span = None;
    if let Some((_, v)) = tree.get(ix, "filter")
        && !tree.is_null(v)
        && cx.map(v, &field(path, "filter")).is_some()
        && let Some(Value::Object(m)) = cx.json(v, &field(path, "filter"))
    {
        filter = m;
        filter_span = Some(tree.span(v));
    }

    let own = match tree.get(ix, "variables") {
        Some((_, v)) => check_variables(cx, v, &field(path, "variables"))
            .unwrap_or_else(|| Value::Object(Map::new())),
        None => Value::Object(Map::new()),
    };
    let variables = deep_merge(infra_vars, &own);

    Some(NodeDraft {
        name: name?,
        path: path.to_string(),
        name_span: tree.span(name_ix?),
        type_name,
        type_span: type_ix.map(|t| tree.span(t)),
        scaling,
        filter,
        filter_span,
        variables,
    })
}

fn check_scaling(cx: &mut Cx<'_>, v: Ix, path: &str) -> Scaling {
    let tree = cx.tree;
    if cx.map(v, path).is_none() {
        return Scaling::default();
    }
    cx.allowed_keys(v, &["min", "max"], path, "`scaling`");
    let mut read = |key: &str| -> Option<u32> {
        let (_, x) = tree.get(v, key)?;
        match tree.as_scalar(x).map(|s| s.value) {
            Some(Resolved::Int(i)) if i >= 0 => Some(u32::try_from(i).unwrap_or(u32::MAX)),
            Some(Resolved::Null) => None,
            _ => {
                cx.rep.emit(
                    Diagnostic::error(
                        Code::BadScaling,
                        format!("`scaling.{key}` must be a whole number of instances (0 or more)"),
                    )
                    .with_path(field(path, key))
                    .with_hint("e.g. `scaling: {min: 1, max: 5}`"),
                    tree.span(x),
                );
                None
            }
        }
    };
    let min = read("min");
    let max = read("max");
    let s = Scaling::from_written(min, max);
    if min == Some(0) {
        cx.rep.emit(
            Diagnostic::warning(Code::ScalingAdjusted, "`scaling.min: 0` is raised to 1")
                .with_path(field(path, "min"))
                .with_hint("Occopus always keeps at least one instance of every node"),
            tree.get(v, "min").map(|(_, x)| tree.span(x)),
        );
    }
    if let (Some(written), true) = (max, max.is_some_and(|m| m < s.min)) {
        cx.rep.emit(
            Diagnostic::warning(
                Code::ScalingAdjusted,
                format!(
                    "`scaling.max: {written}` is below `min`; it is raised to {}",
                    s.min
                ),
            )
            .with_path(field(path, "max"))
            .with_hint("Occopus treats `max` below `min` as `max = min`"),
            tree.get(v, "max").map(|(_, x)| tree.span(x)),
        );
    }
    s
}

fn check_dependency(
    cx: &mut Cx<'_>,
    item: Ix,
    path: &str,
    by_ix: &HashMap<Ix, usize>,
    by_name: &HashMap<String, usize>,
    nodes: &[NodeDraft],
) -> Option<EdgeDraft> {
    let tree = cx.tree;
    let span = tree.span(item);
    let shape_hint = "write `[*Dependent, *Dependee]` (YAML aliases of the node mappings, or node names), or `{connection: [*Dependent, *Dependee], mappings: [...]}`";
    let (pair_ix, pair_path, mappings) = if tree.as_seq(item).is_some() {
        (item, path.to_string(), Vec::new())
    } else if tree.as_map(item).is_some() {
        let conn = cx.required(item, "connection", path, "a dependency", span, shape_hint)?;
        let mut mappings = Vec::new();
        if let Some((_, m)) = tree.get(item, "mappings")
            && !tree.is_null(m)
        {
            let mpath = field(path, "mappings");
            for (j, x) in cx.seq(m, &mpath)?.iter().enumerate() {
                check_mapping(cx, *x, &index(&mpath, j));
                mappings.push(cx.json(*x, &index(&mpath, j))?);
            }
        }
        (conn, field(path, "connection"), mappings)
    } else {
        cx.rep.emit(
            Diagnostic::error(
                Code::BadDependency,
                format!(
                    "a dependency must be a list of two nodes or a mapping, but it is {}",
                    tree.describe(item)
                ),
            )
            .with_path(path)
            .with_hint(shape_hint),
            span,
        );
        return None;
    };
    let Some(pair) = tree.as_seq(pair_ix) else {
        cx.rep.emit(
            Diagnostic::error(
                Code::BadDependency,
                format!(
                    "`connection` must be a list of two nodes, but it is {}",
                    tree.describe(pair_ix)
                ),
            )
            .with_path(pair_path)
            .with_hint(shape_hint),
            tree.span(pair_ix),
        );
        return None;
    };
    if pair.len() != 2 {
        cx.rep.emit(
            Diagnostic::error(
                Code::BadDependency,
                format!("a dependency names exactly two nodes, `[dependent, dependee]`; this one has {}", pair.len()),
            )
            .with_path(pair_path)
            .with_hint(shape_hint),
            tree.span(pair_ix),
        );
        return None;
    }
    let a = dependency_end(cx, pair[0], &index(&pair_path, 0), by_ix, by_name);
    let b = dependency_end(cx, pair[1], &index(&pair_path, 1), by_ix, by_name);
    let (a, b) = (a?, b?);
    if a == b {
        cx.rep.emit(
            Diagnostic::error(
                Code::SelfDependency,
                format!("node `{}` depends on itself", nodes[a].name),
            )
            .with_path(pair_path)
            .with_hint("a dependency is `[dependent, dependee]`: two different nodes"),
            tree.span(pair_ix),
        );
        return None;
    }
    Some(EdgeDraft {
        dependent: a,
        dependee: b,
        mappings,
        span: Some(tree.span(pair_ix)),
        implicit: None,
    })
}

fn dependency_end(
    cx: &mut Cx<'_>,
    ix: Ix,
    path: &str,
    by_ix: &HashMap<Ix, usize>,
    by_name: &HashMap<String, usize>,
) -> Option<usize> {
    let tree = cx.tree;
    if let Some(&n) = by_ix.get(&tree.resolve(ix)) {
        return Some(n);
    }
    // A plain node name (Occopus ignored these silently), or a copy of a node mapping.
    let name = match tree.as_map(ix) {
        Some(_) => tree.get(ix, "name").and_then(|(_, v)| tree.as_str(v)),
        None => tree.as_str(ix),
    };
    let Some(name) = name else {
        // An alias of a node that was itself rejected has been reported already.
        if tree.as_map(ix).is_none() {
            cx.rep.emit(
                Diagnostic::error(
                    Code::BadDependency,
                    format!(
                        "a dependency names a node with an alias (`*A`) or its name, not {}",
                        tree.describe(ix)
                    ),
                )
                .with_path(path),
                tree.span(ix),
            );
        }
        return None;
    };
    if let Some(&n) = by_name.get(name) {
        return Some(n);
    }
    let mut hint = did_you_mean(name, by_name.keys().map(String::as_str)).unwrap_or_default();
    if hint.is_empty() {
        let mut known: Vec<&str> = by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        hint = format!("the nodes are {}", name_list(&known, 8));
    }
    cx.rep.emit(
        Diagnostic::error(
            Code::UnknownNode,
            format!("dependency on unknown node `{name}`"),
        )
        .with_path(path)
        .with_hint(hint),
        tree.span(ix),
    );
    None
}

/// `mappings` items: `[src_attr, dst_attr]` or `{attributes: [src, dst], synch: bool, ...}`.
fn check_mapping(cx: &mut Cx<'_>, ix: Ix, path: &str) {
    let tree = cx.tree;
    let hint = "a mapping is `[source_attribute, destination_attribute]` or `{attributes: [source, destination], synch: false}`";
    let pair = if tree.as_seq(ix).is_some() {
        Some(ix)
    } else if tree.as_map(ix).is_some() {
        match tree.get(ix, "attributes") {
            Some((_, a)) => {
                if let Some((_, s)) = tree.get(ix, "synch")
                    && !matches!(tree.as_scalar(s).map(|x| x.value), Some(Resolved::Bool(_)))
                {
                    cx.wrong_type(s, &field(path, "synch"), "true or false");
                }
                Some(a)
            }
            None => {
                cx.rep.emit(
                    Diagnostic::error(Code::MissingKey, "a mapping has no `attributes`")
                        .with_path(field(path, "attributes"))
                        .with_hint(hint),
                    tree.span(ix),
                );
                None
            }
        }
    } else {
        None
    };
    let ok = pair
        .and_then(|p| tree.as_seq(p))
        .is_some_and(|s| s.len() == 2 && s.iter().all(|x| tree.as_str(*x).is_some()));
    if pair.is_some() && !ok || pair.is_none() && tree.as_map(ix).is_none() {
        cx.rep.emit(
            Diagnostic::error(Code::BadDependency, "malformed attribute mapping")
                .with_path(path)
                .with_hint(hint),
            tree.span(ix),
        );
    }
}
