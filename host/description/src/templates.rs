//! Static checks of the Jinja2 templates in node definitions, before anything is rendered:
//! syntax, names outside Occopus's template namespace, `variables.x.y` paths missing for a
//! node that uses the template, and `getip('node')`-style calls (unknown nodes, and the
//! dependencies they imply).
//!
//! Owns: finding template strings in an implementation, mapping template lines back to
//! file lines, and a small scanner for `getip`/`getprivip`/`getipall`/`find_node_id`
//! calls. Must not: render anything or decide graph edges (the loader does, from the calls
//! reported here).

use crate::diag::{Code, Diagnostic, Severity, did_you_mean, name_list, suggest};
use crate::infra::NodeDraft;
use crate::nodedef::pointer_path;
use crate::report::Reporter;
use crate::source::Span;
use crate::yaml::{Ix, Kind, Style, Tree};
use occopus_model::{Contextualisation, NodeImpl};
use occopus_template::{Renderer, is_template};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Names every Occopus template can use (spec §3).
const BASE_NAMES: &[&str] = &[
    "node_id",
    "name",
    "type",
    "scaling",
    "filter",
    "infra_id",
    "infra_name",
    "user_id",
    "mappings",
    "variables",
    "resource",
    "contextualisation",
    "config_management",
    "health_check",
];
/// Globals minijinja provides itself.
const JINJA_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "loop"];
/// Functions that read another node's instances.
const CALLS: &[&str] = &["getip", "getprivip", "getipall", "find_node_id"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    Resource,
    ConfigManagement,
    Context,
    Attributes,
    Docker,
    Health,
}

/// Where a template string is written, to turn template positions into file positions.
#[derive(Debug, Clone, Copy)]
struct Origin {
    span: Span,
    style: Style,
}

#[derive(Debug)]
struct Piece {
    text: String,
    origin: Option<Origin>,
}

/// A `variables.a.b` path a template reads, checked per node.
#[derive(Debug)]
struct VarUse {
    name: String,
    at: Option<Span>,
}

/// What a `getip(...)` call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Literal(String),
    /// `getip(variables.a.b)`: the path after `variables`.
    Variable(Vec<String>),
}

#[derive(Debug)]
struct Call {
    text: String,
    target: Target,
    at: Option<Span>,
}

/// One template string (or, for a cloud-config mapping, the strings inside it).
#[derive(Debug)]
pub(crate) struct Site {
    path: String,
    vars: Vec<VarUse>,
    calls: Vec<Call>,
    /// Undefined names reported already (once per site is enough).
    reported: HashSet<String>,
}

/// A call from one node's templates to another node, found by [`TemplateCheck::check_nodes`].
#[derive(Debug, Clone)]
pub(crate) struct CallUse {
    pub from: usize,
    pub to: usize,
    pub call: String,
    pub at: Option<Span>,
    /// The template's field path.
    pub path: String,
}

/// Which implementations each node uses: `(type index, implementation positions)`.
pub(crate) struct NodeUses {
    pub node: usize,
    pub type_ix: usize,
    pub impls: Vec<usize>,
}

/// The template checker of one load.
pub(crate) struct TemplateCheck<'a> {
    pub renderer: &'a Renderer,
    pub tree: &'a Tree,
    pub lenient: bool,
}

fn undefined_severity(lenient: bool) -> Severity {
    if lenient {
        Severity::Warning
    } else {
        Severity::Error
    }
}

const LENIENT_HINT: &str = "or run with `--jinja-undefined=lenient` to render undefined names as empty text like Occopus 1.10";

impl TemplateCheck<'_> {
    /// Find and check the templates of one implementation. Problems that do not depend on
    /// the node using it (syntax, names outside the namespace, `getip` of a literal
    /// unknown node) are reported here, once.
    pub fn sites(
        &self,
        rep: &mut Reporter,
        type_name: &str,
        imp: &NodeImpl,
        impl_ix: Option<Ix>,
        node_names: Option<&HashSet<&str>>,
    ) -> Vec<Site> {
        let base = format!("node_def:{type_name}[{}]", imp.index);
        let mut raw: Vec<(SiteKind, String, String)> = Vec::new();
        walk(
            &Value::Object(imp.resource.clone()),
            "/resource".into(),
            SiteKind::Resource,
            &mut raw,
        );
        if let Some(cm) = &imp.config_management {
            walk(
                &Value::Object(cm.clone()),
                "/config_management".into(),
                SiteKind::ConfigManagement,
                &mut raw,
            );
        }
        let mut extra: Vec<String> = Vec::new();
        match &imp.contextualisation {
            Contextualisation::Cloudinit {
                context_template,
                attributes,
            } => {
                if is_template(context_template) {
                    raw.push((
                        SiteKind::Context,
                        "/contextualisation/context_template".into(),
                        context_template.clone(),
                    ));
                }
                walk(
                    attributes,
                    "/contextualisation/attributes".into(),
                    SiteKind::Attributes,
                    &mut raw,
                );
            }
            Contextualisation::Docker {
                env,
                command,
                context_variables,
            } => {
                for (i, e) in env.iter().enumerate() {
                    if is_template(e) {
                        raw.push((
                            SiteKind::Docker,
                            format!("/contextualisation/env/{i}"),
                            e.clone(),
                        ));
                    }
                }
                if let Some(c) = command {
                    walk(
                        c,
                        "/contextualisation/command".into(),
                        SiteKind::Docker,
                        &mut raw,
                    );
                }
                extra.push("context_variables".into());
                if let Some(m) = context_variables.as_object() {
                    extra.extend(m.keys().cloned());
                }
            }
            Contextualisation::Basic { attributes } => {
                walk(
                    attributes,
                    "/contextualisation/attributes".into(),
                    SiteKind::Attributes,
                    &mut raw,
                );
            }
        }
        let hc = &imp.health_check;
        if hc.type_name == "basic" {
            for key in ["urls", "mysqldbs"] {
                if let Some(v) = hc.section.get(key) {
                    walk(
                        v,
                        format!("/health_check/{key}"),
                        SiteKind::Health,
                        &mut raw,
                    );
                }
            }
        } else {
            walk(
                &Value::Object(hc.section.clone()),
                "/health_check".into(),
                SiteKind::Health,
                &mut raw,
            );
        }
        let puppet = imp
            .config_management
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str)
            == Some("puppet_solo");

        let mut sites = Vec::new();
        for (kind, pointer, text) in raw {
            let path = pointer_path(&base, &pointer);
            let pieces = self.pieces(impl_ix, &pointer, text);
            let mut allowed: Vec<&str> = BASE_NAMES.to_vec();
            match kind {
                SiteKind::Health => allowed.extend(["ip", "instance_data"]),
                SiteKind::Docker => allowed.extend(extra.iter().map(String::as_str)),
                _ => {}
            }
            if puppet && !matches!(kind, SiteKind::Resource | SiteKind::ConfigManagement) {
                allowed.push("puppet");
            }
            let mut site = Site {
                path,
                vars: Vec::new(),
                calls: Vec::new(),
                reported: HashSet::new(),
            };
            for piece in &pieces {
                self.check_piece(rep, piece, &allowed, node_names, &mut site);
            }
            if !site.vars.is_empty() || !site.calls.is_empty() {
                sites.push(site);
            }
        }
        sites
    }

    /// The template strings at `pointer` of an implementation: one, or for a cloud-config
    /// written as a mapping, every template string inside it (each with its own position).
    fn pieces(&self, impl_ix: Option<Ix>, pointer: &str, text: String) -> Vec<Piece> {
        let Some(node) = impl_ix.and_then(|ix| self.tree.pointer(ix, pointer)) else {
            return vec![Piece { text, origin: None }];
        };
        let origin_of = |ix: Ix| {
            let r = self.tree.resolve(ix);
            self.tree.as_scalar(r).map(|s| Origin {
                span: self.tree.span(r),
                style: s.style,
            })
        };
        if self.tree.as_scalar(node).is_some() {
            return vec![Piece {
                text,
                origin: origin_of(node),
            }];
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![node];
        while let Some(ix) = stack.pop() {
            let r = self.tree.resolve(ix);
            if !seen.insert(r) {
                continue;
            }
            match self.tree.kind(r) {
                Kind::Scalar(s) if is_template(&s.text) => out.push(Piece {
                    text: s.text.clone(),
                    origin: origin_of(r),
                }),
                Kind::Seq(items) => stack.extend(items.iter().rev()),
                Kind::Map(entries) => {
                    for (k, v) in entries.iter().rev() {
                        stack.push(*v);
                        stack.push(*k);
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn check_piece(
        &self,
        rep: &mut Reporter,
        piece: &Piece,
        allowed: &[&str],
        node_names: Option<&HashSet<&str>>,
        site: &mut Site,
    ) {
        let text = &piece.text;
        if let Err(e) = self.renderer.check_syntax(text) {
            let offset = e.line.map_or(0, |l| line_offset(text, l));
            rep.emit(
                Diagnostic::error(Code::TemplateSyntax, format!("template syntax error: {}", e.message))
                    .with_path(&site.path)
                    .with_hint("Jinja2 syntax: `{{ expression }}`, `{% statement %}`; wrap text that must stay as written in `{% raw %}...{% endraw %}`"),
                self.locate(piece, offset),
            );
            return;
        }
        let names = match self.renderer.referenced_names(text) {
            Ok(n) => n,
            Err(_) => return,
        };
        for name in names {
            let head = name.split('.').next().unwrap_or("");
            if JINJA_GLOBALS.contains(&head) {
                continue;
            }
            let at = self.locate(
                piece,
                text.find(name.as_str())
                    .or_else(|| text.find(head))
                    .unwrap_or(0),
            );
            if !allowed.contains(&head) {
                if !site.reported.insert(head.to_string()) {
                    continue;
                }
                let hint = if node_names.is_some_and(|n| n.contains(head)) {
                    format!("`{head}` is a node name: quote it, as in getip('{head}')")
                } else {
                    suggest(
                        head,
                        allowed.iter().copied(),
                        &format!(
                            "templates here can use {}; {LENIENT_HINT}",
                            allowed.join(", ")
                        ),
                    )
                };
                rep.emit(
                    Diagnostic::new(
                        undefined_severity(self.lenient),
                        Code::UndefinedName,
                        format!("undefined name `{head}` in template"),
                    )
                    .with_path(&site.path)
                    .with_hint(hint),
                    at,
                );
                continue;
            }
            if head == "variables" && name.contains('.') {
                site.vars.push(VarUse { name, at });
            }
        }
        for found in scan_calls(text) {
            let at = self.locate(piece, found.offset);
            if let (Target::Literal(t), Some(names)) = (&found.target, node_names)
                && !names.contains(t.as_str())
            {
                unknown_target(rep, &found.text, t, names, &site.path, at, None);
                continue;
            }
            site.calls.push(Call {
                text: found.text,
                target: found.target,
                at,
            });
        }
    }

    /// The file position of byte `offset` of a piece's text.
    fn locate(&self, piece: &Piece, offset: usize) -> Option<Span> {
        let o = piece.origin?;
        let text = &piece.text;
        let before = text.get(..offset).unwrap_or(text);
        let line_in = u32::try_from(before.matches('\n').count()).unwrap_or(0);
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let col_in = u32::try_from(before[line_start..].chars().count()).unwrap_or(0);
        let file = o.span.file;
        Some(match o.style {
            Style::Imported => Span::point(file, 1 + line_in, 1 + col_in),
            Style::Literal => {
                // The span starts at the first non-blank content line, at the block's
                // indentation.
                let skipped = text
                    .split('\n')
                    .position(|l| !l.trim_start_matches(' ').is_empty())
                    .unwrap_or(0);
                let skipped = u32::try_from(skipped).unwrap_or(0);
                let line = (o.span.line + line_in).saturating_sub(skipped).max(1);
                Span::point(file, line, o.span.col + col_in)
            }
            Style::Plain if o.span.line == o.span.end_line => {
                Span::point(file, o.span.line, o.span.col + col_in)
            }
            Style::SingleQuoted | Style::DoubleQuoted if o.span.line == o.span.end_line => {
                Span::point(file, o.span.line, o.span.col + 1 + col_in)
            }
            _ => Span::point(file, o.span.line, o.span.col),
        })
    }

    /// Per node: `variables.x` paths missing from the node's merged variables, and calls
    /// to other nodes (returned, so the loader can check the dependency graph).
    pub fn check_nodes(
        &self,
        rep: &mut Reporter,
        nodes: &[NodeDraft],
        uses: &[NodeUses],
        sites: &[Vec<Vec<Site>>],
        by_name: &HashMap<&str, usize>,
    ) -> Vec<CallUse> {
        // (type, impl, site, var) -> nodes lacking it
        let mut missing: BTreeMap<(usize, usize, usize, usize), Vec<usize>> = BTreeMap::new();
        // (type, impl, site, call, target) -> nodes
        let mut unknown: BTreeMap<(usize, usize, usize, usize, String), Vec<usize>> =
            BTreeMap::new();
        let mut calls = Vec::new();
        let mut seen_calls: HashSet<(usize, usize)> = HashSet::new();
        for u in uses {
            let node = &nodes[u.node];
            for &i in &u.impls {
                let Some(impl_sites) = sites.get(u.type_ix).and_then(|t| t.get(i)) else {
                    continue;
                };
                for (s, site) in impl_sites.iter().enumerate() {
                    for (v, var) in site.vars.iter().enumerate() {
                        let segs: Vec<&str> = var.name.split('.').skip(1).collect();
                        if lookup(&node.variables, &segs).is_err() {
                            missing
                                .entry((u.type_ix, i, s, v))
                                .or_default()
                                .push(u.node);
                        }
                    }
                    for (c, call) in site.calls.iter().enumerate() {
                        let target = match &call.target {
                            Target::Literal(t) => t.clone(),
                            Target::Variable(path) => {
                                let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                                match lookup(&node.variables, &segs) {
                                    Ok(Some(Value::String(s))) => s.clone(),
                                    _ => continue,
                                }
                            }
                        };
                        match by_name.get(target.as_str()) {
                            None => unknown
                                .entry((u.type_ix, i, s, c, target))
                                .or_default()
                                .push(u.node),
                            Some(&to) if to == u.node => {
                                if seen_calls.insert((to, to)) {
                                    rep.emit(
                                        Diagnostic::warning(
                                            Code::GetipSelf,
                                            format!("node `{}` reads its own addresses with `{}`", node.name, call.text),
                                        )
                                        .with_path(&site.path)
                                        .with_hint("the first instance of a node has no instance of itself to read; use a variable or another node"),
                                        call.at,
                                    );
                                }
                            }
                            Some(&to) => {
                                if seen_calls.insert((u.node, to)) {
                                    calls.push(CallUse {
                                        from: u.node,
                                        to,
                                        call: call.text.clone(),
                                        at: call.at,
                                        path: site.path.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        for ((t, i, s, v), who) in missing {
            let site = &sites[t][i][s];
            let var = &site.vars[v];
            let segs: Vec<&str> = var.name.split('.').skip(1).collect();
            let names: Vec<&str> = who.iter().map(|n| nodes[*n].name.as_str()).collect();
            let first = &nodes[who[0]];
            let known = match lookup_parent(&first.variables, &segs) {
                Some(Value::Object(m)) => m.keys().map(String::as_str).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            let last = segs.last().copied().unwrap_or("");
            let hint = suggest(
                last,
                known.iter().copied(),
                &format!(
                    "define `{}` under `variables` in the infrastructure description or the node; {LENIENT_HINT}",
                    segs.join(".")
                ),
            );
            let whose = if names.len() == 1 {
                format!("node `{}` has", names[0])
            } else {
                format!("nodes {} have", name_list(&names, 3))
            };
            rep.emit(
                Diagnostic::new(
                    undefined_severity(self.lenient),
                    Code::UndefinedName,
                    format!(
                        "undefined name `{}` in template: {whose} no such variable",
                        var.name
                    ),
                )
                .with_path(&site.path)
                .with_hint(hint),
                var.at,
            );
        }
        let all: HashSet<&str> = by_name.keys().copied().collect();
        for ((t, i, s, c, target), who) in unknown {
            let site = &sites[t][i][s];
            let call = &site.calls[c];
            let names: Vec<&str> = who.iter().map(|n| nodes[*n].name.as_str()).collect();
            unknown_target(
                rep,
                &call.text,
                &target,
                &all,
                &site.path,
                call.at,
                Some(&names),
            );
        }
        calls
    }
}

fn unknown_target(
    rep: &mut Reporter,
    call: &str,
    target: &str,
    names: &HashSet<&str>,
    path: &str,
    at: Option<Span>,
    via_variable_of: Option<&[&str]>,
) {
    let mut msg = format!("`{call}` refers to unknown node `{target}`");
    if let Some(who) = via_variable_of {
        msg.push_str(&format!(
            " (the variable's value for {})",
            name_list(who, 3)
        ));
    }
    let mut sorted: Vec<&str> = names.iter().copied().collect();
    sorted.sort_unstable();
    let hint = did_you_mean(target, sorted.iter().copied())
        .unwrap_or_else(|| format!("the nodes are {}", name_list(&sorted, 8)));
    rep.emit(
        Diagnostic::error(Code::GetipUnknownNode, msg)
            .with_path(path)
            .with_hint(hint),
        at,
    );
}

/// Walk a JSON value; every template string becomes a site `(kind, pointer, text)`.
fn walk(v: &Value, pointer: String, kind: SiteKind, out: &mut Vec<(SiteKind, String, String)>) {
    match v {
        Value::String(s) if is_template(s) => out.push((kind, pointer, s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, format!("{pointer}/{i}"), kind, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let esc = k.replace('~', "~0").replace('/', "~1");
                walk(x, format!("{pointer}/{esc}"), kind, out);
            }
        }
        _ => {}
    }
}

/// Follow `segs` into `v`. `Err` when a mapping lacks a key; `Ok(None)` when the path goes
/// through something that is not a mapping (a method or item access we cannot judge).
fn lookup<'v>(v: &'v Value, segs: &[&str]) -> Result<Option<&'v Value>, ()> {
    let mut cur = v;
    for s in segs {
        match cur {
            Value::Object(m) => match m.get(*s) {
                Some(x) => cur = x,
                None => return Err(()),
            },
            _ => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// The deepest existing mapping on the way to `segs`' last key.
fn lookup_parent<'v>(v: &'v Value, segs: &[&str]) -> Option<&'v Value> {
    let mut cur = v;
    for s in segs.iter().take(segs.len().saturating_sub(1)) {
        cur = cur.get(*s)?;
    }
    Some(cur)
}

/// Byte offset of the start of 1-based line `line`.
fn line_offset(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// A node-reading call found by [`scan_calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub offset: usize,
    /// The call as written, `getip('db')`.
    pub text: String,
    pub target: Target,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Find `getip(...)`-style calls in template text whose argument is a string literal or a
/// `variables.x` path. Text outside `{{ }}`/`{% %}`, comments and `{% raw %}` blocks are
/// skipped, as are string literals inside expressions.
pub(crate) fn scan_calls(src: &str) -> Vec<Found> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => {
                i = find(b, i + 2, b"#}").map_or(b.len(), |p| p + 2);
            }
            b'{' => i = scan_expr(src, i + 2, b"}}", &mut out),
            b'%' => {
                if let Some(after) = tag_named(b, i, b"raw") {
                    i = end_of_raw(b, after);
                } else {
                    i = scan_expr(src, i + 2, b"%}", &mut out);
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    (from..=b.len().checked_sub(pat.len())?).find(|&p| &b[p..p + pat.len()] == pat)
}

/// If a `{% name %}` tag starts at `i`, the index after it.
fn tag_named(b: &[u8], i: usize, name: &[u8]) -> Option<usize> {
    let mut j = i + 2;
    if matches!(b.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    j = skip_ws(b, j);
    if b.get(j..j + name.len())? != name {
        return None;
    }
    j += name.len();
    if b.get(j).is_some_and(|c| is_ident(*c)) {
        return None;
    }
    j = skip_ws(b, j);
    if matches!(b.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    (b.get(j..j + 2)? == b"%}").then_some(j + 2)
}

fn end_of_raw(b: &[u8], mut i: usize) -> usize {
    while let Some(p) = find(b, i, b"{%") {
        if let Some(after) = tag_named(b, p, b"endraw") {
            return after;
        }
        i = p + 2;
    }
    b.len()
}

/// Scan one expression or statement from `i` to its closing delimiter.
fn scan_expr(src: &str, mut i: usize, close: &[u8], out: &mut Vec<Found>) -> usize {
    let b = src.as_bytes();
    let mut prev_dot = false;
    while i < b.len() {
        if b[i..].starts_with(close) {
            return i + close.len();
        }
        let c = b[i];
        if c == b'\'' || c == b'"' {
            i = skip_string(b, i);
            prev_dot = false;
            continue;
        }
        if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let ident = &src[start..i];
            if !prev_dot
                && CALLS.contains(&ident)
                && let Some(found) = call_at(src, start, i)
            {
                out.push(found);
            }
            prev_dot = false;
            continue;
        }
        if !c.is_ascii_whitespace() {
            prev_dot = c == b'.';
        }
        i += 1;
    }
    b.len()
}

fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The call whose name spans `start..name_end`, if its argument is one we understand.
fn call_at(src: &str, start: usize, name_end: usize) -> Option<Found> {
    let b = src.as_bytes();
    let mut j = skip_ws(b, name_end);
    if b.get(j) != Some(&b'(') {
        return None;
    }
    j = skip_ws(b, j + 1);
    let target;
    match b.get(j)? {
        q @ (b'\'' | b'"') => {
            let end = j + 1 + b[j + 1..].iter().position(|x| x == q)?;
            target = Target::Literal(src[j + 1..end].to_string());
            j = end + 1;
        }
        c if is_ident_start(*c) => {
            let s = j;
            while j < b.len() && (is_ident(b[j]) || b[j] == b'.') {
                j += 1;
            }
            let path: Vec<String> = src[s..j].split('.').map(str::to_string).collect();
            if path.len() < 2 || path[0] != "variables" || path.iter().any(String::is_empty) {
                return None;
            }
            target = Target::Variable(path[1..].to_vec());
        }
        _ => return None,
    }
    j = skip_ws(b, j);
    match b.get(j)? {
        b')' => Some(Found {
            offset: start,
            text: src[start..=j].to_string(),
            target,
        }),
        b',' => Some(Found {
            offset: start,
            text: format!("{}...)", &src[start..=j]),
            target,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(src: &str) -> Vec<(String, Target)> {
        scan_calls(src)
            .into_iter()
            .map(|f| (f.text, f.target))
            .collect()
    }

    #[test]
    fn scanner_finds_literal_and_variable_calls() {
        assert_eq!(
            targets("ping {{getip('ping-receiver')}} -c 5"),
            vec![(
                "getip('ping-receiver')".into(),
                Target::Literal("ping-receiver".into())
            )]
        );
        assert_eq!(
            targets("{{ getprivip( \"m\" ) }} {{getipall(variables.a.b)}}"),
            vec![
                ("getprivip( \"m\" )".into(), Target::Literal("m".into())),
                (
                    "getipall(variables.a.b)".into(),
                    Target::Variable(vec!["a".into(), "b".into()])
                ),
            ]
        );
        assert_eq!(
            targets("{{ find_node_id('db', allnodes=True).node_id }}")[0].1,
            Target::Literal("db".into())
        );
    }

    #[test]
    fn scanner_skips_what_is_not_a_call() {
        assert!(targets("getip('x') outside").is_empty());
        assert!(targets("{% raw %}{{ getip('x') }}{% endraw %}").is_empty());
        assert!(targets("{%- raw -%}{{ getip('x') }}{%- endraw %}").is_empty());
        assert!(targets("{# {{ getip('x') }} #}").is_empty());
        assert!(targets("{{ 'getip(\"x\")' }}").is_empty());
        assert!(targets("{{ getip(master) }}").is_empty());
        assert!(targets("{{ item.getip('x') }}").is_empty());
        assert!(targets("{{ mygetip('x') }}").is_empty());
        assert!(targets("{{'{{'}}getip('x'){{'}}'}}").is_empty());
        assert_eq!(
            targets("{% if x %}{{ getip('a') }}{% endif %}{% raw %}{{ getip('b') }}{% endraw %} {{ getip('c') }}")
                .len(),
            2
        );
        // Non-ASCII text must not trip the byte scanner.
        assert_eq!(targets("é {{ getip('ü') }} ő").len(), 1);
    }

    #[test]
    fn variable_lookups() {
        let v = serde_json::json!({"a": {"b": "x"}, "s": "str"});
        assert!(lookup(&v, &["a", "b"]).is_ok());
        assert!(lookup(&v, &["a", "c"]).is_err());
        assert_eq!(lookup(&v, &["s", "upper"]), Ok(None));
        assert_eq!(line_offset("a\nb\nc", 3), 4);
    }
}
