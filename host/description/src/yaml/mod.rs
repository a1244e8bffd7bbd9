//! A YAML document tree that keeps a span for every node and the identity of anchored
//! nodes: an alias `*A` is a node of its own (with the alias's span) pointing at the node
//! anchored `&A`, so a dependency written `*A` resolves to exactly that node mapping.
//!
//! Owns: building the tree from parser events (duplicate keys, merge keys `<<`, core tags,
//! `!yaml_import`/`!text_import` requests, limits against hostile input), plain-scalar
//! typing by YAML 1.1 rules (PyYAML's, see [`resolve`]), conversion to JSON and JSON-pointer
//! lookups. Must not: read files (imports are resolved by the loader) or know what a
//! description is.

pub(crate) mod emit;
pub(crate) mod resolve;

use crate::diag::{Code, Diagnostic};
use crate::report::Reporter;
use crate::source::{FileId, Span};
use resolve::{Resolved, resolve_plain};
use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Index of a node in a [`Tree`].
pub(crate) type Ix = u32;

/// Deepest nesting accepted while parsing.
const MAX_DEPTH: usize = 256;
/// Most JSON values one conversion may produce (aliases can multiply data).
const MAX_EXPANDED: usize = 1_000_000;
/// Deepest JSON a conversion may produce (aliases can nest).
const MAX_JSON_DEPTH: usize = 1024;

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
    /// The whole text of a file brought in by `!text_import` (starts at line 1, column 1).
    Imported,
}

#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    /// The value (after YAML unquoting and folding).
    pub text: String,
    pub style: Style,
    /// The typed value (by YAML 1.1 rules for plain scalars, or by an explicit core tag).
    pub value: Resolved,
    /// Written with an explicit core tag (`!!str 5`).
    pub tagged: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A collection still being read (an alias to it would be recursive).
    Pending,
    /// Something that could not be read; treated as null and already reported.
    Invalid,
    Scalar(Scalar),
    Seq(Vec<Ix>),
    /// Entries in written order, merge keys (`<<`) already applied.
    Map(Vec<(Ix, Ix)>),
    /// `*A`: the node anchored `&A`.
    Alias(Ix),
    /// `!yaml_import`/`!text_import`: the imported content.
    Import(Ix),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

/// What a tagged node asks to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImportKind {
    Yaml,
    Text,
}

impl ImportKind {
    pub fn tag(self) -> &'static str {
        match self {
            Self::Yaml => "!yaml_import",
            Self::Text => "!text_import",
        }
    }
}

/// A `!yaml_import {url: ...}` / `!text_import {url: ...}` found while parsing.
#[derive(Debug, Clone)]
pub(crate) struct ImportRequest {
    /// The tagged mapping (replaced by [`Kind::Import`] once resolved).
    pub node: Ix,
    pub kind: ImportKind,
}

/// Result of parsing one file into the tree.
pub(crate) struct Built {
    /// The document's root (`None` after a syntax error).
    pub root: Option<Ix>,
    pub imports: Vec<ImportRequest>,
}

/// Every node of every YAML file of one load.
#[derive(Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
}

/// Data too large or too deep to convert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooLarge;

enum Frame {
    Seq {
        ix: Ix,
        items: Vec<Ix>,
        tag: Option<TagKind>,
    },
    Map {
        ix: Ix,
        items: Vec<Ix>,
        tag: Option<TagKind>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TagKind {
    Core(String),
    Import(ImportKind),
    Other(String),
}

fn tag_kind(tag: &saphyr_parser::Tag) -> TagKind {
    if tag.handle == "tag:yaml.org,2002:" {
        TagKind::Core(tag.suffix.clone())
    } else if tag.handle == "!" && tag.suffix == "yaml_import" {
        TagKind::Import(ImportKind::Yaml)
    } else if tag.handle == "!" && tag.suffix == "text_import" {
        TagKind::Import(ImportKind::Text)
    } else if tag.handle == "!" {
        TagKind::Other(format!("!{}", tag.suffix))
    } else {
        TagKind::Other(format!("{}{}", tag.handle, tag.suffix))
    }
}

fn span_of(file: FileId, sp: &saphyr_parser::Span) -> Span {
    let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Span {
        file,
        line: c(sp.start.line()).max(1),
        col: c(sp.start.col()).saturating_add(1),
        end_line: c(sp.end.line()).max(1),
        end_col: c(sp.end.col()).saturating_add(1),
    }
}

impl Tree {
    fn alloc(&mut self, kind: Kind, span: Span) -> Ix {
        self.nodes.push(Node { kind, span });
        Ix::try_from(self.nodes.len() - 1).unwrap_or(Ix::MAX)
    }

    /// Add a scalar made by the loader (e.g. the text of a `!text_import`ed file).
    pub fn add_scalar(&mut self, s: Scalar, span: Span) -> Ix {
        self.alloc(Kind::Scalar(s), span)
    }

    /// Replace a node (used to resolve imports).
    pub fn set_kind(&mut self, ix: Ix, kind: Kind) {
        self.nodes[ix as usize].kind = kind;
    }

    /// Where the node is written (for an alias: the alias; for an import: the tag).
    pub fn span(&self, ix: Ix) -> Span {
        self.nodes[ix as usize].span
    }

    /// Follow aliases and imports to the node holding the data.
    pub fn resolve(&self, mut ix: Ix) -> Ix {
        for _ in 0..64 {
            match self.nodes[ix as usize].kind {
                Kind::Alias(t) | Kind::Import(t) => ix = t,
                _ => return ix,
            }
        }
        ix
    }

    pub fn kind(&self, ix: Ix) -> &Kind {
        &self.nodes[self.resolve(ix) as usize].kind
    }

    pub fn as_map(&self, ix: Ix) -> Option<&[(Ix, Ix)]> {
        match self.kind(ix) {
            Kind::Map(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_seq(&self, ix: Ix) -> Option<&[Ix]> {
        match self.kind(ix) {
            Kind::Seq(e) => Some(e),
            _ => None,
        }
    }

    pub fn as_scalar(&self, ix: Ix) -> Option<&Scalar> {
        match self.kind(ix) {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A string value (a scalar that resolved to a string).
    pub fn as_str(&self, ix: Ix) -> Option<&str> {
        self.as_scalar(ix)
            .filter(|s| s.value == Resolved::Str)
            .map(|s| s.text.as_str())
    }

    /// The text of a scalar key (whatever its type).
    pub fn key_text(&self, ix: Ix) -> Option<&str> {
        self.as_scalar(ix).map(|s| s.text.as_str())
    }

    pub fn is_null(&self, ix: Ix) -> bool {
        matches!(
            self.kind(ix),
            Kind::Scalar(Scalar {
                value: Resolved::Null,
                ..
            }) | Kind::Invalid
        )
    }

    /// The entry `key` of a mapping: `(key node, value node)`.
    pub fn get(&self, map: Ix, key: &str) -> Option<(Ix, Ix)> {
        self.as_map(map)?
            .iter()
            .find(|(k, _)| self.key_text(*k) == Some(key))
            .copied()
    }

    /// What kind of value this is, for messages: `a mapping`, `a list`, `a string`...
    pub fn describe(&self, ix: Ix) -> &'static str {
        match self.kind(ix) {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar(s) => match s.value {
                Resolved::Null => "an empty value",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) => "an integer",
                Resolved::Float(_) => "a number",
                Resolved::Str => "a string",
            },
            Kind::Pending | Kind::Invalid | Kind::Alias(_) | Kind::Import(_) => "an invalid value",
        }
    }

    /// The node at a JSON pointer (`/resource/security_group_ids/0`) below `ix`.
    pub fn pointer(&self, ix: Ix, pointer: &str) -> Option<Ix> {
        let mut cur = ix;
        if pointer.is_empty() {
            return Some(cur);
        }
        for raw in pointer.strip_prefix('/')?.split('/') {
            let part = raw.replace("~1", "/").replace("~0", "~");
            cur = match self.kind(cur) {
                Kind::Map(_) => self.get(cur, &part)?.1,
                Kind::Seq(items) => *items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The value as JSON (aliases and imports expanded).
    pub fn to_json(&self, ix: Ix) -> Result<Value, TooLarge> {
        let mut budget = MAX_EXPANDED;
        self.json(ix, &mut budget, 0)
    }

    fn json(&self, ix: Ix, budget: &mut usize, depth: usize) -> Result<Value, TooLarge> {
        if *budget == 0 || depth > MAX_JSON_DEPTH {
            return Err(TooLarge);
        }
        *budget -= 1;
        Ok(match self.kind(ix) {
            Kind::Scalar(s) => scalar_json(s),
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.json(*i, budget, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = match self.key_text(*k) {
                        Some(t) => t.to_string(),
                        None => self.json(*k, budget, depth + 1)?.to_string(),
                    };
                    m.insert(key, self.json(*v, budget, depth + 1)?);
                }
                Value::Object(m)
            }
            Kind::Pending | Kind::Invalid | Kind::Alias(_) | Kind::Import(_) => Value::Null,
        })
    }

    /// Parse `text` (file `file`) into this tree. Problems go to `rep`; for a `sensitive`
    /// file (credentials) they never quote the file's values.
    pub fn build(
        &mut self,
        text: &str,
        file: FileId,
        sensitive: bool,
        rep: &mut Reporter,
    ) -> Built {
        // About one node per 6 bytes of YAML: avoid regrowing a large arena.
        self.nodes.reserve(text.len() / 6);
        Builder {
            tree: self,
            file,
            sensitive,
            rep,
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            imports: Vec::new(),
        }
        .run(text)
    }
}

fn scalar_json(s: &Scalar) -> Value {
    match s.value {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::from(i),
        Resolved::Float(f) => serde_json::Number::from_f64(f)
            .map_or_else(|| Value::String(s.text.clone()), Value::Number),
        Resolved::Str => Value::String(s.text.clone()),
    }
}

struct Builder<'a> {
    tree: &'a mut Tree,
    file: FileId,
    sensitive: bool,
    rep: &'a mut Reporter,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Ix>,
    root: Option<Ix>,
    imports: Vec<ImportRequest>,
}

impl Builder<'_> {
    fn run(mut self, text: &str) -> Built {
        let mut docs = 0;
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (ev, sp) = match next {
                Ok(x) => x,
                Err(e) => {
                    let m = e.marker();
                    let line = u32::try_from(m.line()).unwrap_or(u32::MAX).max(1);
                    let col = u32::try_from(m.col()).unwrap_or(u32::MAX).saturating_add(1);
                    let d = if e.info().contains("recursion limit") {
                        Diagnostic::error(Code::TooLarge, "nesting is too deep")
                    } else {
                        Diagnostic::error(Code::YamlSyntax, format!("invalid YAML: {}", e.info()))
                            .with_hint(syntax_hint(e.info()))
                    };
                    self.rep.emit(d, Span::point(self.file, line, col));
                    return Built {
                        root: None,
                        imports: Vec::new(),
                    };
                }
            };
            let span = span_of(self.file, &sp);
            match ev {
                Event::DocumentStart(_) => {
                    docs += 1;
                    if docs > 1 {
                        self.rep.emit(
                            Diagnostic::error(
                                Code::MultipleDocuments,
                                "this file holds more than one YAML document",
                            )
                            .with_hint("remove the `---` line and everything after the first document, or split the file"),
                            span,
                        );
                        break;
                    }
                }
                Event::Alias(id) => {
                    let node = match self.anchors.get(&id).copied() {
                        Some(t) if matches!(self.tree.nodes[t as usize].kind, Kind::Pending) => {
                            self.rep.emit(
                                Diagnostic::error(
                                    Code::RecursiveAlias,
                                    "this alias refers to a node that contains it",
                                )
                                .with_hint(
                                    "an anchored node cannot include itself; copy the data instead",
                                ),
                                span,
                            );
                            self.tree.alloc(Kind::Invalid, span)
                        }
                        Some(t) => self.tree.alloc(Kind::Alias(t), span),
                        None => self.tree.alloc(Kind::Invalid, span),
                    };
                    self.complete(node);
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let ix = self.scalar(value.into_owned(), style, tag.as_deref(), span);
                    if anchor != 0 {
                        self.anchors.insert(anchor, ix);
                    }
                    self.complete(ix);
                }
                Event::SequenceStart(anchor, tag) => {
                    if !self.open(anchor, tag.as_deref(), span, true) {
                        return Built {
                            root: None,
                            imports: Vec::new(),
                        };
                    }
                }
                Event::MappingStart(anchor, tag) => {
                    if !self.open(anchor, tag.as_deref(), span, false) {
                        return Built {
                            root: None,
                            imports: Vec::new(),
                        };
                    }
                }
                Event::SequenceEnd => {
                    if let Some(Frame::Seq { ix, items, tag }) = self.stack.pop() {
                        self.finish_span(ix, span);
                        self.tree.set_kind(ix, Kind::Seq(items));
                        self.collection_tag(ix, tag, "seq");
                        self.complete(ix);
                    }
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map { ix, items, tag }) = self.stack.pop() {
                        self.finish_span(ix, span);
                        let entries = self.mapping(items);
                        self.tree.set_kind(ix, Kind::Map(entries));
                        self.collection_tag(ix, tag, "map");
                        self.complete(ix);
                    }
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        // An empty document is a null value at the start of the file.
        let root = match self.root {
            Some(r) => r,
            None => self.tree.alloc(
                Kind::Scalar(Scalar {
                    text: String::new(),
                    style: Style::Plain,
                    value: Resolved::Null,
                    tagged: false,
                }),
                Span::file_start(self.file),
            ),
        };
        Built {
            root: Some(root),
            imports: self.imports,
        }
    }

    /// Start a collection; `false` when nesting is too deep to go on.
    fn open(
        &mut self,
        anchor: usize,
        tag: Option<&saphyr_parser::Tag>,
        span: Span,
        is_seq: bool,
    ) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            self.rep.emit(
                Diagnostic::error(
                    Code::TooLarge,
                    format!("nesting deeper than {MAX_DEPTH} levels"),
                ),
                span,
            );
            return false;
        }
        let ix = self.tree.alloc(Kind::Pending, span);
        if anchor != 0 {
            self.anchors.insert(anchor, ix);
        }
        let tag = tag.map(tag_kind);
        let items = Vec::new();
        self.stack.push(if is_seq {
            Frame::Seq { ix, items, tag }
        } else {
            Frame::Map { ix, items, tag }
        });
        true
    }

    fn finish_span(&mut self, ix: Ix, end: Span) {
        let n = &mut self.tree.nodes[ix as usize];
        if (end.line, end.col) > (n.span.line, n.span.col) {
            n.span.end_line = end.line;
            n.span.end_col = end.col;
        }
        // A caret under a whole block collection is noise: keep it to its first line.
        if n.span.end_line != n.span.line {
            n.span.end_line = n.span.line;
            n.span.end_col = n.span.col + 1;
        }
    }

    fn complete(&mut self, ix: Ix) {
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. } | Frame::Map { items, .. }) => items.push(ix),
            None => {
                if self.root.is_none() {
                    self.root = Some(ix);
                }
            }
        }
    }

    fn collection_tag(&mut self, ix: Ix, tag: Option<TagKind>, core: &str) {
        match tag {
            None => {}
            Some(TagKind::Core(s)) if s == core => {}
            Some(TagKind::Import(kind)) if core == "map" => {
                self.imports.push(ImportRequest { node: ix, kind });
            }
            Some(TagKind::Import(kind)) => self.rep.emit(
                Diagnostic::error(
                    Code::ImportUrl,
                    format!("`{}` takes a mapping with `url`, not a list", kind.tag()),
                )
                .with_hint(format!("write `{} {{url: file://name}}`", kind.tag())),
                self.tree.span(ix),
            ),
            Some(TagKind::Core(s)) => self.unknown_tag(&format!("!!{s}"), self.tree.span(ix)),
            Some(TagKind::Other(s)) => self.unknown_tag(&s, self.tree.span(ix)),
        }
    }

    fn unknown_tag(&mut self, tag: &str, span: Span) {
        self.rep.emit(
            Diagnostic::error(Code::UnknownTag, format!("unsupported YAML tag `{tag}`"))
                .with_hint("Occopus files may use `!yaml_import`, `!text_import` and the core tags (`!!str`, `!!int`, ...)"),
            span,
        );
    }

    fn scalar(
        &mut self,
        text: String,
        style: ScalarStyle,
        tag: Option<&saphyr_parser::Tag>,
        span: Span,
    ) -> Ix {
        let style = match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            ScalarStyle::Literal => Style::Literal,
            ScalarStyle::Folded => Style::Folded,
        };
        let plain = if style == Style::Plain {
            resolve_plain(&text)
        } else {
            Resolved::Str
        };
        let (value, tagged) = match tag.map(tag_kind) {
            None => (plain, false),
            Some(TagKind::Core(t)) => {
                let v = match t.as_str() {
                    "str" | "binary" | "timestamp" => Some(Resolved::Str),
                    "null" => Some(Resolved::Null),
                    "bool" => match resolve_plain(&text) {
                        b @ Resolved::Bool(_) => Some(b),
                        _ => None,
                    },
                    "int" => match resolve_plain(&text) {
                        i @ Resolved::Int(_) => Some(i),
                        _ => None,
                    },
                    "float" => match resolve_plain(&text) {
                        Resolved::Int(i) => Some(Resolved::Float(i as f64)),
                        f @ Resolved::Float(_) => Some(f),
                        _ => None,
                    },
                    other => {
                        self.unknown_tag(&format!("!!{other}"), span);
                        Some(plain)
                    }
                };
                match v {
                    Some(v) => (v, true),
                    None => {
                        let what = if self.sensitive {
                            "this value".to_string()
                        } else {
                            format!("`{text}`")
                        };
                        self.rep.emit(
                            Diagnostic::error(
                                Code::WrongType,
                                format!("{what} is not a valid `!!{t}` value"),
                            ),
                            span,
                        );
                        (Resolved::Str, true)
                    }
                }
            }
            Some(TagKind::Import(kind)) => {
                self.rep.emit(
                    Diagnostic::error(
                        Code::ImportUrl,
                        format!("`{}` takes a mapping with `url`", kind.tag()),
                    )
                    .with_hint(format!(
                        "write `{} {{url: file://{}}}`",
                        kind.tag(),
                        if self.sensitive {
                            "name"
                        } else {
                            text.strip_prefix("file://").unwrap_or(&text)
                        }
                    )),
                    span,
                );
                return self.tree.alloc(Kind::Invalid, span);
            }
            Some(TagKind::Other(t)) => {
                self.unknown_tag(&t, span);
                (plain, false)
            }
        };
        self.tree.alloc(
            Kind::Scalar(Scalar {
                text,
                style,
                value,
                tagged,
            }),
            span,
        )
    }

    /// Pair up keys and values, report duplicate keys and apply merge keys (`<<`).
    fn mapping(&mut self, flat: Vec<Ix>) -> Vec<(Ix, Ix)> {
        let tree: &Tree = self.tree;
        let key_of = |k: Ix| {
            tree.as_scalar(k)
                .map(|s| (discriminant(s.value), s.text.as_str()))
        };
        let mut entries: Vec<(Ix, Ix)> = Vec::with_capacity(flat.len() / 2);
        let mut merges: Vec<Ix> = Vec::new();
        // Small mappings (almost all) are searched linearly; large ones through an index.
        let mut index: Option<HashMap<(u8, &str), usize>> = None;
        let mut duplicates: Vec<(Ix, Ix, Ix)> = Vec::new();
        for pair in flat.chunks_exact(2) {
            let (k, v) = (pair[0], pair[1]);
            let key = key_of(k);
            if let Some(s) = tree.as_scalar(k)
                && s.style == Style::Plain
                && !s.tagged
                && s.text == "<<"
            {
                merges.push(v);
                continue;
            }
            let Some(key) = key else {
                entries.push((k, v));
                continue;
            };
            if index.is_none() && entries.len() >= 16 {
                index = Some(
                    entries
                        .iter()
                        .enumerate()
                        .filter_map(|(i, (ek, _))| key_of(*ek).map(|x| (x, i)))
                        .collect(),
                );
            }
            let found = match &index {
                Some(ix) => ix.get(&key).copied(),
                None => entries.iter().position(|(ek, _)| key_of(*ek) == Some(key)),
            };
            match found {
                Some(i) => {
                    duplicates.push((entries[i].0, k, v));
                    // Keep the last value, as PyYAML does.
                    entries[i].1 = v;
                }
                None => {
                    if let Some(ix) = &mut index {
                        ix.insert(key, entries.len());
                    }
                    entries.push((k, v));
                }
            }
        }
        for (first, k, _) in duplicates {
            let first_line = tree.span(first).line;
            let name = tree.key_text(k).unwrap_or_default();
            self.rep.emit(
                Diagnostic::error(
                    Code::DuplicateKey,
                    format!("duplicate key `{name}` (first written on line {first_line})"),
                )
                .with_hint("YAML keeps only one of the values (Occopus silently used the last); remove or rename one"),
                tree.span(k),
            );
        }
        if merges.is_empty() {
            return entries;
        }
        let mut present: HashSet<String> = entries
            .iter()
            .filter_map(|(k, _)| tree.key_text(*k).map(str::to_string))
            .collect();
        for m in merges {
            let sources: Vec<Ix> = match tree.kind(m) {
                Kind::Map(_) => vec![m],
                Kind::Seq(items) => items.clone(),
                _ => {
                    self.rep.emit(
                        Diagnostic::error(
                            Code::WrongType,
                            format!(
                                "a merge key `<<` takes a mapping or a list of mappings, not {}",
                                tree.describe(m)
                            ),
                        ),
                        tree.span(m),
                    );
                    continue;
                }
            };
            for src in sources {
                let Some(more) = tree.as_map(src) else {
                    self.rep.emit(
                        Diagnostic::error(
                            Code::WrongType,
                            format!(
                                "a merge key `<<` takes mappings, not {}",
                                tree.describe(src)
                            ),
                        ),
                        tree.span(src),
                    );
                    continue;
                };
                for (k, v) in more {
                    if let Some(name) = tree.key_text(*k)
                        && present.insert(name.to_string())
                    {
                        entries.push((*k, *v));
                    }
                }
            }
        }
        entries
    }
}

fn discriminant(v: Resolved) -> u8 {
    match v {
        Resolved::Null => 0,
        Resolved::Bool(_) => 1,
        Resolved::Int(_) => 2,
        Resolved::Float(_) => 3,
        Resolved::Str => 4,
    }
}

fn syntax_hint(info: &str) -> String {
    if info.contains("tab") {
        "YAML indents with spaces only; replace the tabs".into()
    } else if info.contains("quoted scalar") {
        "a quote is not closed".into()
    } else if info.contains("unknown anchor") {
        "an alias `*name` must come after the anchor `&name` it refers to, in the same file".into()
    } else if info.contains("':' indicator") {
        "a `[` or `{` before this point may not be closed, or a value containing `: ` needs quotes"
            .into()
    } else if info.contains("mapping values are not allowed") {
        "a value containing `: ` must be quoted, or the indentation is off".into()
    } else {
        "check the indentation and quoting around this position".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Sources;

    fn parse(text: &str) -> (Tree, Option<Ix>, crate::diag::Diagnostics) {
        let mut sources = Sources::default();
        let f = sources.add("t.yaml".into(), None, text.into(), false);
        let mut rep = Reporter::default();
        let mut tree = Tree::default();
        let built = tree.build(text, f, false, &mut rep);
        (tree, built.root, rep.finish(&sources))
    }

    #[test]
    fn aliases_keep_identity_and_span() {
        let (t, root, d) =
            parse("nodes:\n  - &A {name: a}\n  - &B {name: b}\ndeps:\n  - [*B, *A]\n");
        assert!(d.is_empty(), "{d}");
        let root = root.unwrap();
        let nodes = t.as_seq(t.get(root, "nodes").unwrap().1).unwrap().to_vec();
        let dep = t.as_seq(t.get(root, "deps").unwrap().1).unwrap()[0];
        let pair = t.as_seq(dep).unwrap();
        assert_eq!(t.resolve(pair[0]), t.resolve(nodes[1]));
        assert_eq!(t.resolve(pair[1]), t.resolve(nodes[0]));
        assert_eq!((t.span(pair[0]).line, t.span(pair[0]).col), (5, 6));
    }

    #[test]
    fn yaml11_scalars_and_tags() {
        let (t, root, d) = parse("a: yes\nb: '5'\nc: !!str 5\nd: 0777\ne: ~\nf: |\n  x\n");
        assert!(d.is_empty(), "{d}");
        let j = t.to_json(root.unwrap()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"a": true, "b": "5", "c": "5", "d": 511, "e": null, "f": "x\n"})
        );
    }

    #[test]
    fn duplicate_keys_merge_keys_and_limits() {
        let (t, root, d) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d.iter().next().unwrap().code, Code::DuplicateKey);
        assert_eq!(d.iter().next().unwrap().line, Some(3));
        assert_eq!(
            t.to_json(root.unwrap()).unwrap(),
            serde_json::json!({"a": 3, "b": 2})
        );

        let (t, root, d) = parse("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        assert!(d.is_empty(), "{d}");
        assert_eq!(
            t.to_json(root.unwrap()).unwrap()["c"],
            serde_json::json!({"y": 3, "x": 1})
        );

        let (_, _, d) = parse("a: &x [*x]\n");
        assert!(d.contains(Code::RecursiveAlias), "{d}");
        let (_, _, d) = parse("a: 1\n---\nb: 2\n");
        assert!(d.contains(Code::MultipleDocuments), "{d}");
        let (_, _, d) = parse(&format!("{}1{}", "[".repeat(300), "]".repeat(300)));
        assert!(d.contains(Code::TooLarge), "{d}");
        let (_, _, d) = parse("a: !foo 1\n");
        assert!(d.contains(Code::UnknownTag), "{d}");
        let (_, _, d) = parse("a: [1, 2\nb: 3\n");
        assert!(d.contains(Code::YamlSyntax), "{d}");
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (t, root, d) = parse(&s);
        assert!(d.is_empty(), "{d}");
        assert!(t.to_json(root.unwrap()).is_err());
    }

    #[test]
    fn pointers() {
        let (t, root, _) = parse("r:\n  list: [a, {b: c}]\n  'x/y': 1\n");
        let root = root.unwrap();
        let ix = t.pointer(root, "/r/list/1/b").unwrap();
        assert_eq!(t.as_str(ix), Some("c"));
        assert!(t.pointer(root, "/r/x~1y").is_some());
        assert!(t.pointer(root, "/r/nope").is_none());
    }
}
