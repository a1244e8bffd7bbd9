//! The loader: reads the files of one load (with their imports), runs every check, and
//! puts the result together as a [`ResolvedInfra`], or returns every problem found.
//!
//! Owns: file reading and import resolution (`file://` URLs relative to the importing
//! file, cycles), attaching node definitions to nodes (`filter`), implicit dependencies
//! from `getip` calls, cycle detection, and the public entry points. Must not: render
//! templates or call plugins other than for schema checks.

use crate::auth::AuthData;
use crate::check::{Cx, field};
use crate::diag::{Code, Diagnostic, Diagnostics, name_list, suggest};
use crate::infra::{self, EdgeDraft, ImplicitWhy, InfraDraft};
use crate::nodedef::{DefChecker, DefOrigins, NodeDefs};
use crate::report::Reporter;
use crate::source::{FileId, Sources, Span};
use crate::templates::{NodeUses, Site, TemplateCheck};
use crate::yaml::{ImportKind, ImportRequest, Ix, Kind, Scalar, Style, Tree, resolve::Resolved};
use occopus_graph::Dag;
use occopus_model::plugin::{PluginHost, PluginKind};
use occopus_model::{Edge, NodeName, NodeSpec, ResolvedInfra};
use occopus_template::{Options, Renderer};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a file's text comes from.
#[derive(Clone, PartialEq)]
pub enum Input {
    /// Read this file; imports resolve relative to its directory.
    Path(PathBuf),
    /// In-memory text (e.g. a description POSTed to the REST service). `name` is how
    /// diagnostics refer to it; imports resolve against `base_dir`, and fail without one.
    Text {
        /// How diagnostics name the text.
        name: String,
        /// The text.
        text: String,
        /// Directory imports resolve against.
        base_dir: Option<PathBuf>,
    },
}

impl std::fmt::Debug for Input {
    /// Never prints the text: it may be auth data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Self::Text {
                name,
                text,
                base_dir,
            } => f
                .debug_struct("Text")
                .field("name", name)
                .field("bytes", &text.len())
                .field("base_dir", base_dir)
                .finish(),
        }
    }
}

impl From<PathBuf> for Input {
    fn from(p: PathBuf) -> Self {
        Self::Path(p)
    }
}

impl From<&Path> for Input {
    fn from(p: &Path) -> Self {
        Self::Path(p.to_path_buf())
    }
}

impl From<&str> for Input {
    /// A path.
    fn from(p: &str) -> Self {
        Self::Path(PathBuf::from(p))
    }
}

/// Where node definitions come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NodeDefSource {
    /// `nodes/node_definitions.yaml` next to the description (the tutorials' layout).
    #[default]
    Beside,
    /// A node definition file.
    File(PathBuf),
    /// In-memory node definitions text.
    Text {
        /// How diagnostics name the text.
        name: String,
        /// The text.
        text: String,
        /// Directory imports resolve against.
        base_dir: Option<PathBuf>,
    },
    /// Definitions stored earlier by `occopus import` (already validated).
    Stored(NodeDefs),
}

/// What to load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// The infrastructure description.
    pub infra: Input,
    /// The node definitions.
    pub nodes: NodeDefSource,
    /// The auth data file, if credentials are needed (`None`: no credentials).
    pub auth: Option<Input>,
    /// Undefined template names are warnings instead of errors (Occopus 1.10 rendered
    /// them as empty text); the CLI flag is `--jinja-undefined=lenient`.
    pub lenient_templates: bool,
}

impl LoadOptions {
    /// Load the description at `path` with `nodes/node_definitions.yaml` beside it, no
    /// auth data, strict templates.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            infra: Input::Path(path.into()),
            nodes: NodeDefSource::Beside,
            auth: None,
            lenient_templates: false,
        }
    }

    /// Load a description given as text (set [`nodes`](Self::nodes) too: text has no
    /// directory to find node definitions beside).
    pub fn from_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            infra: Input::Text {
                name: name.into(),
                text: text.into(),
                base_dir: None,
            },
            nodes: NodeDefSource::Beside,
            auth: None,
            lenient_templates: false,
        }
    }

    /// Take node definitions from `nodes`.
    pub fn with_nodes(mut self, nodes: NodeDefSource) -> Self {
        self.nodes = nodes;
        self
    }

    /// Read credentials from `auth`.
    pub fn with_auth(mut self, auth: impl Into<Input>) -> Self {
        self.auth = Some(auth.into());
        self
    }

    /// Render undefined template names as empty text (warnings instead of errors).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient_templates = lenient;
        self
    }
}

/// A successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated infrastructure (shared: a build's instance tasks read it without a
    /// copy).
    pub infra: Arc<ResolvedInfra>,
    /// Credentials (empty when no auth file was given).
    pub auth: AuthData,
    /// Everything worth telling that did not stop the load.
    pub warnings: Diagnostics,
}

/// Node definitions read from a file, with the warnings found.
#[derive(Debug, Clone)]
pub struct ParsedNodeDefs {
    /// The validated definitions.
    pub defs: NodeDefs,
    /// Problems that did not stop the parse.
    pub warnings: Diagnostics,
}

/// Load and validate an infrastructure description with its node definitions and auth
/// data. Every problem of every file is reported at once; `host`, when given, checks
/// sections against the loaded plugins' schemas.
pub fn load(opts: &LoadOptions, host: Option<&dyn PluginHost>) -> Result<Loaded, Diagnostics> {
    let mut l = Loader::default();
    let infra_root = l.read(&opts.infra, false);

    let mut checker = DefChecker::new(host);
    let stored = matches!(opts.nodes, NodeDefSource::Stored(_));
    let (defs, origins) = match &opts.nodes {
        NodeDefSource::Stored(d) => (d.clone(), None),
        other => {
            let input = match other {
                NodeDefSource::File(p) => Some(Input::Path(p.clone())),
                NodeDefSource::Text {
                    name,
                    text,
                    base_dir,
                } => Some(Input::Text {
                    name: name.clone(),
                    text: text.clone(),
                    base_dir: base_dir.clone(),
                }),
                _ => l.beside(&opts.infra),
            };
            match input.and_then(|i| l.read(&i, false)) {
                Some(root) => {
                    let mut cx = Cx {
                        tree: &l.tree,
                        rep: &mut l.rep,
                    };
                    let (d, o) = checker.check(&mut cx, root);
                    (d, Some(o))
                }
                None => (NodeDefs::default(), None),
            }
        }
    };

    let auth = match &opts.auth {
        Some(input) => match l.read(input, true) {
            Some(root) => {
                let mut cx = Cx {
                    tree: &l.tree,
                    rep: &mut l.rep,
                };
                AuthData::check(&mut cx, &l.sources, root)
            }
            None => AuthData::default(),
        },
        None => AuthData::default(),
    };

    let draft = infra_root.map(|root| {
        let mut cx = Cx {
            tree: &l.tree,
            rep: &mut l.rep,
        };
        infra::check(&mut cx, root)
    });

    // Without readable node definitions there is nothing to attach (already reported).
    let draft = draft.filter(|_| stored || origins.is_some());
    let resolved = l.resolve(
        draft,
        &defs,
        origins.as_ref(),
        stored,
        &auth,
        opts.lenient_templates,
    );
    let diags = l.rep.finish(&l.sources);
    match resolved {
        Some(infra) if !diags.has_errors() => Ok(Loaded {
            infra: Arc::new(infra),
            auth,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

/// Read and validate a node definition file (what `occopus import` stores). Templates are
/// checked for syntax and for names outside Occopus's namespace; variables are checked
/// when a description uses the definitions.
pub fn parse_node_definitions(
    path: &Path,
    host: Option<&dyn PluginHost>,
) -> Result<ParsedNodeDefs, Diagnostics> {
    node_definitions(&Input::Path(path.to_path_buf()), host)
}

/// [`parse_node_definitions`] for in-memory text; imports resolve against `base_dir`.
pub fn parse_node_definitions_str(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
    host: Option<&dyn PluginHost>,
) -> Result<ParsedNodeDefs, Diagnostics> {
    node_definitions(
        &Input::Text {
            name: name.into(),
            text: text.into(),
            base_dir: base_dir.map(Path::to_path_buf),
        },
        host,
    )
}

fn node_definitions(
    input: &Input,
    host: Option<&dyn PluginHost>,
) -> Result<ParsedNodeDefs, Diagnostics> {
    let mut l = Loader::default();
    let mut checker = DefChecker::new(host);
    let mut defs = NodeDefs::default();
    if let Some(root) = l.read(input, false) {
        let mut cx = Cx {
            tree: &l.tree,
            rep: &mut l.rep,
        };
        let (d, o) = checker.check(&mut cx, root);
        l.all_sites(&d, Some(&o), None, false, None);
        defs = d;
    }
    let diags = l.rep.finish(&l.sources);
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(ParsedNodeDefs {
            defs,
            warnings: diags,
        })
    }
}

/// Read a YAML (or JSON) file as plain data, for configuration files that are not part
/// of a description (the operator config). Syntax errors, `!yaml_import`/`!text_import`
/// problems and over-large alias expansions come back as diagnostics with positions;
/// checking the keys is up to the caller. An empty file is `null`.
pub fn parse_yaml(input: &Input) -> Result<serde_json::Value, Diagnostics> {
    let mut l = Loader::default();
    let mut value = serde_json::Value::Null;
    if let Some(root) = l.read(input, false) {
        let mut cx = Cx {
            tree: &l.tree,
            rep: &mut l.rep,
        };
        if let Some(v) = cx.json(root, "") {
            value = v;
        }
    }
    let diags = l.rep.finish(&l.sources);
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(value)
    }
}

/// Read and check an auth data file.
pub fn parse_auth_data(path: &Path) -> Result<AuthData, Diagnostics> {
    auth_data(&Input::Path(path.to_path_buf()))
}

/// [`parse_auth_data`] for in-memory text; `!text_import` resolves against `base_dir`.
pub fn parse_auth_data_str(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<AuthData, Diagnostics> {
    auth_data(&Input::Text {
        name: name.into(),
        text: text.into(),
        base_dir: base_dir.map(Path::to_path_buf),
    })
}

fn auth_data(input: &Input) -> Result<AuthData, Diagnostics> {
    let mut l = Loader::default();
    let mut auth = AuthData::default();
    if let Some(root) = l.read(input, true) {
        let mut cx = Cx {
            tree: &l.tree,
            rep: &mut l.rep,
        };
        auth = AuthData::check(&mut cx, &l.sources, root);
    }
    let diags = l.rep.finish(&l.sources);
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(auth)
    }
}

#[derive(Default)]
struct Loader {
    sources: Sources,
    tree: Tree,
    rep: Reporter,
    yaml_cache: HashMap<PathBuf, Ix>,
    text_cache: HashMap<PathBuf, Ix>,
    /// Files being imported (canonical paths), for cycle detection.
    stack: Vec<PathBuf>,
}

fn display_path(p: &Path) -> String {
    p.display().to_string()
}

impl Loader {
    /// Read and parse an input, with its imports. `None` if it cannot be read or parsed.
    fn read(&mut self, input: &Input, sensitive: bool) -> Option<Ix> {
        match input {
            Input::Path(p) => {
                let text = match std::fs::read_to_string(p) {
                    Ok(t) => t,
                    Err(e) => {
                        self.rep.emit(
                            Diagnostic::error(
                                Code::FileUnreadable,
                                format!("cannot read `{}`: {e}", display_path(p)),
                            )
                            .with_hint("check the path and the file's permissions"),
                            None,
                        );
                        return None;
                    }
                };
                let base = p.parent().map(Path::to_path_buf);
                let canonical = std::fs::canonicalize(p).ok();
                self.parse(display_path(p), base, canonical, text, sensitive)
            }
            Input::Text {
                name,
                text,
                base_dir,
            } => self.parse(
                name.clone(),
                base_dir.clone(),
                None,
                text.clone(),
                sensitive,
            ),
        }
    }

    /// `nodes/node_definitions.yaml` beside the description.
    fn beside(&mut self, infra: &Input) -> Option<Input> {
        let dir = match infra {
            Input::Path(p) => Some(p.parent().map(Path::to_path_buf).unwrap_or_default()),
            Input::Text { base_dir, .. } => base_dir.clone(),
        };
        match dir {
            Some(d) => Some(Input::Path(d.join("nodes").join("node_definitions.yaml"))),
            None => {
                self.rep.emit(
                    Diagnostic::error(
                        Code::FileUnreadable,
                        "no node definitions: a description given as text has no directory to find `nodes/node_definitions.yaml` in",
                    )
                    .with_hint("pass the node definitions explicitly, or import them first with `occopus import`"),
                    None,
                );
                None
            }
        }
    }

    fn parse(
        &mut self,
        display: String,
        base_dir: Option<PathBuf>,
        canonical: Option<PathBuf>,
        text: String,
        sensitive: bool,
    ) -> Option<Ix> {
        let file = self.sources.add(display, base_dir, text, sensitive);
        let built = self
            .tree
            .build(&self.sources.get(file).text, file, sensitive, &mut self.rep);
        if let Some(c) = &canonical {
            self.stack.push(c.clone());
        }
        self.imports(built.imports, file, sensitive);
        if canonical.is_some() {
            self.stack.pop();
        }
        built.root
    }

    fn imports(&mut self, reqs: Vec<ImportRequest>, importer: FileId, sensitive: bool) {
        for req in reqs {
            let target = self.import(&req, importer, sensitive);
            self.tree
                .set_kind(req.node, target.map_or(Kind::Invalid, Kind::Import));
        }
    }

    fn import(&mut self, req: &ImportRequest, importer: FileId, sensitive: bool) -> Option<Ix> {
        let tag = req.kind.tag();
        let span = self.tree.span(req.node);
        let form = format!("write `{tag} {{url: file://name}}` (relative to this file)");
        let url = match self.tree.get(req.node, "url") {
            Some((_, u)) => match self.tree.as_str(u) {
                Some(s) => s.to_string(),
                None => {
                    self.rep.emit(
                        Diagnostic::error(
                            Code::ImportUrl,
                            format!("the `url` of `{tag}` must be a string"),
                        )
                        .with_hint(form),
                        self.tree.span(u),
                    );
                    return None;
                }
            },
            None => {
                self.rep.emit(
                    Diagnostic::error(Code::ImportUrl, format!("`{tag}` has no `url`"))
                        .with_hint(form),
                    span,
                );
                return None;
            }
        };
        let Some(rel) = url.strip_prefix("file://") else {
            self.rep.emit(
                Diagnostic::error(
                    Code::ImportUrl,
                    format!("cannot import `{url}`: only `file://` URLs are supported"),
                )
                .with_hint(form),
                span,
            );
            return None;
        };
        let rel_path = Path::new(rel);
        let (full, display) = if rel_path.is_absolute() {
            (rel_path.to_path_buf(), rel.to_string())
        } else {
            let src = self.sources.get(importer);
            let Some(base) = src.base_dir.clone() else {
                self.rep.emit(
                    Diagnostic::error(
                        Code::ImportUrl,
                        format!("cannot resolve `{url}`: this text was given without a directory"),
                    )
                    .with_hint("imports are relative to the file that contains them; load the file from disk"),
                    span,
                );
                return None;
            };
            let shown = Path::new(&src.display)
                .parent()
                .map_or_else(|| rel_path.to_path_buf(), |d| d.join(rel_path));
            (base.join(rel_path), display_path(&shown))
        };
        let read_err = |e: std::io::Error| {
            Diagnostic::error(
                Code::ImportMissing,
                format!("cannot read `{display}` (imported with `{tag}`): {e}"),
            )
            .with_hint(
                "the path in `url: file://...` is relative to the file that contains the import",
            )
        };
        let canonical = match std::fs::canonicalize(&full) {
            Ok(c) => c,
            Err(e) => {
                self.rep.emit(read_err(e), span);
                return None;
            }
        };
        if self.stack.contains(&canonical) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .skip_while(|p| **p != canonical)
                .chain(std::iter::once(&canonical))
                .map(|p| {
                    p.file_name()
                        .map_or_else(|| display_path(p), |n| n.to_string_lossy().into_owned())
                })
                .collect();
            self.rep.emit(
                Diagnostic::error(
                    Code::ImportCycle,
                    format!("import cycle: {}", chain.join(" -> ")),
                )
                .with_hint("a file cannot import itself, directly or through other files"),
                span,
            );
            return None;
        }
        let cache = match req.kind {
            ImportKind::Yaml => &self.yaml_cache,
            ImportKind::Text => &self.text_cache,
        };
        if let Some(ix) = cache.get(&canonical) {
            return Some(*ix);
        }
        let text = match std::fs::read_to_string(&full) {
            Ok(t) => t,
            Err(e) => {
                self.rep.emit(read_err(e), span);
                return None;
            }
        };
        let base = full.parent().map(Path::to_path_buf);
        let ix = match req.kind {
            ImportKind::Yaml => {
                let root = self.parse(display, base, Some(canonical.clone()), text, sensitive)?;
                self.yaml_cache.insert(canonical, root);
                root
            }
            ImportKind::Text => {
                let file = self.sources.add(display, base, text.clone(), sensitive);
                let ix = self.tree.add_scalar(
                    Scalar {
                        text,
                        style: Style::Imported,
                        value: Resolved::Str,
                        tagged: false,
                    },
                    Span::file_start(file),
                );
                self.text_cache.insert(canonical, ix);
                ix
            }
        };
        Some(ix)
    }

    /// Template sites of every implementation: `sites[type][impl position]`.
    fn all_sites(
        &mut self,
        defs: &NodeDefs,
        origins: Option<&DefOrigins>,
        node_names: Option<&HashSet<&str>>,
        lenient: bool,
        only: Option<&HashSet<&str>>,
    ) -> Vec<Vec<Vec<Site>>> {
        let renderer = Renderer::new(Options::default());
        let tc = TemplateCheck {
            renderer: &renderer,
            tree: &self.tree,
            lenient,
        };
        defs.types()
            .map(|t| {
                if only.is_some_and(|o| !o.contains(t)) {
                    return Vec::new();
                }
                let origin = origins.and_then(|o| o.types.get(t));
                defs.get(t)
                    .unwrap_or_default()
                    .iter()
                    .map(|imp| {
                        let ix = origin.and_then(|o| o.impls.get(imp.index).copied());
                        tc.sites(&mut self.rep, t, imp, ix, node_names)
                    })
                    .collect()
            })
            .collect()
    }

    /// Attach definitions to nodes, check templates, add implicit edges, find cycles and
    /// build the result. `None` when the description could not be read.
    fn resolve(
        &mut self,
        draft: Option<InfraDraft>,
        defs: &NodeDefs,
        origins: Option<&DefOrigins>,
        stored: bool,
        auth: &AuthData,
        lenient: bool,
    ) -> Option<ResolvedInfra> {
        let Some(mut draft) = draft else {
            // Still report template problems of the node definitions.
            if !stored {
                self.all_sites(defs, origins, None, lenient, None);
            }
            return None;
        };
        let by_name: HashMap<&str, usize> = draft
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let names: HashSet<&str> = by_name.keys().copied().collect();
        let type_ix: HashMap<&str, usize> = defs.types().enumerate().map(|(i, t)| (t, i)).collect();

        // Attach implementations (after `filter`).
        let mut uses: Vec<NodeUses> = Vec::new();
        let mut kept: Vec<Vec<usize>> = vec![Vec::new(); draft.nodes.len()];
        for (n, node) in draft.nodes.iter().enumerate() {
            let Some(t) = node.type_name.as_deref() else {
                continue;
            };
            let Some(impls) = defs.get(t) else {
                let hint = suggest(
                    t,
                    defs.types(),
                    if stored {
                        "node definitions are imported with `occopus import nodes/node_definitions.yaml`"
                    } else {
                        "define it as `'node_def:<type>'` in the node definition file"
                    },
                );
                self.rep.emit(
                    Diagnostic::error(
                        Code::MissingNodeDefinition,
                        format!("no node definition for type `{t}` (node `{}`)", node.name),
                    )
                    .with_path(field(&node.path, "type"))
                    .with_hint(hint),
                    node.type_span,
                );
                continue;
            };
            let keep: Vec<usize> = impls
                .iter()
                .enumerate()
                .filter(|(_, imp)| {
                    node.filter
                        .iter()
                        .all(|(k, v)| imp.resource.get(k) == Some(v))
                })
                .map(|(i, _)| i)
                .collect();
            if keep.is_empty() && !impls.is_empty() {
                let written: Vec<String> = node
                    .filter
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", plain(v)))
                    .collect();
                let available: Vec<String> = node
                    .filter
                    .keys()
                    .map(|k| {
                        let mut vals: Vec<String> = impls
                            .iter()
                            .map(|imp| imp.resource.get(k).map_or_else(|| "(absent)".into(), plain))
                            .collect();
                        vals.dedup();
                        format!("`{k}` is {}", vals.join(", "))
                    })
                    .collect();
                self.rep.emit(
                    Diagnostic::error(
                        Code::FilterMatchesNothing,
                        format!(
                            "the filter {{{}}} of node `{}` matches none of the {} implementation(s) of `node_def:{t}`",
                            written.join(", "),
                            node.name,
                            impls.len()
                        ),
                    )
                    .with_path(field(&node.path, "filter"))
                    .with_hint(format!(
                        "a filter keeps implementations whose `resource` has every key with the same value; in the implementations {}",
                        available.join("; ")
                    )),
                    node.filter_span.or(node.type_span),
                );
                continue;
            }
            if let Some(&ti) = type_ix.get(t) {
                uses.push(NodeUses {
                    node: n,
                    type_ix: ti,
                    impls: keep.clone(),
                });
            }
            kept[n] = keep;
        }

        // Templates.
        let used: HashSet<&str> = draft
            .nodes
            .iter()
            .filter_map(|n| n.type_name.as_deref())
            .collect();
        let sites = self.all_sites(
            defs,
            origins,
            Some(&names),
            lenient,
            stored.then_some(&used),
        );
        let renderer = Renderer::new(Options::default());
        let tc = TemplateCheck {
            renderer: &renderer,
            tree: &self.tree,
            lenient,
        };
        let calls = tc.check_nodes(&mut self.rep, &draft.nodes, &uses, &sites, &by_name);

        // Implicit dependencies: a node reading another's address must wait for it.
        let n = draft.nodes.len();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in &draft.edges {
            deps[e.dependent].push(e.dependee);
        }
        let mut reach = Reach::new(n);
        for c in calls {
            if reach.reaches(&deps, c.from, c.to) {
                continue;
            }
            let (from, to) = (&draft.nodes[c.from].name, &draft.nodes[c.to].name);
            self.rep.emit(
                Diagnostic::warning(
                    Code::ImplicitDependency,
                    format!(
                        "node `{from}` calls `{}` but does not depend on `{to}`; added the dependency `{from} -> {to}`",
                        c.call
                    ),
                )
                .with_path(c.path.clone())
                .with_hint(format!(
                    "write it under `dependencies` to make it explicit: `- [{from}, {to}]`; Occopus 1.10 got away without it only because it created nodes one at a time in list order"
                )),
                c.at.or(Some(draft.nodes[c.from].name_span)),
            );
            deps[c.from].push(c.to);
            draft.edges.push(EdgeDraft {
                dependent: c.from,
                dependee: c.to,
                mappings: Vec::new(),
                span: None,
                implicit: Some(ImplicitWhy {
                    call: c.call,
                    span: c.at,
                }),
            });
        }

        self.cycles(&draft);
        self.ambiguous_credentials(&draft, defs, origins, &kept, auth);

        if self.rep.error_count() > 0 {
            return None;
        }
        let edges: Vec<Edge> = draft
            .edges
            .iter()
            .map(|e| Edge {
                dependent: NodeName::new_unchecked(draft.nodes[e.dependent].name.clone()),
                dependee: NodeName::new_unchecked(draft.nodes[e.dependee].name.clone()),
                mappings: e.mappings.clone(),
                implicit: e.implicit.is_some(),
            })
            .collect();
        let nodes = std::mem::take(&mut draft.nodes)
            .into_iter()
            .zip(kept)
            .map(|(d, kept)| NodeSpec {
                implementations: d
                    .type_name
                    .as_deref()
                    .and_then(|t| defs.get(t))
                    .map(|impls| kept.iter().filter_map(|k| impls.get(*k).cloned()).collect())
                    .unwrap_or_default(),
                name: NodeName::new_unchecked(d.name),
                type_name: d.type_name.unwrap_or_default(),
                scaling: d.scaling,
                filter: d.filter,
                variables: d.variables,
            })
            .collect();
        Some(ResolvedInfra {
            name: draft.name.unwrap_or_default(),
            user_id: draft.user_id,
            variables: serde_json::Value::Object(draft.variables),
            nodes,
            edges,
        })
    }

    fn cycles(&mut self, draft: &InfraDraft) {
        let mut dag = Dag::new(draft.nodes.len());
        for e in &draft.edges {
            dag.add_edge(e.dependent, e.dependee);
        }
        let Some(cycle) = dag.find_cycle() else {
            return;
        };
        let names: Vec<&str> = cycle
            .0
            .iter()
            .map(|&i| draft.nodes[i].name.as_str())
            .collect();
        let edge_of = |a: usize, b: usize| {
            draft
                .edges
                .iter()
                .find(|e| e.dependent == a && e.dependee == b)
        };
        let mut implicit_notes = Vec::new();
        let mut at = None;
        for w in cycle.0.windows(2) {
            if let Some(e) = edge_of(w[0], w[1]) {
                match &e.implicit {
                    Some(why) => {
                        implicit_notes.push(format!(
                            "`{} -> {}` is implicit: `{}` calls `{}`",
                            draft.nodes[w[0]].name,
                            draft.nodes[w[1]].name,
                            draft.nodes[w[0]].name,
                            why.call
                        ));
                        at = at.or(why.span);
                    }
                    None => at = at.or(e.span),
                }
            }
        }
        let first_explicit = cycle.0.windows(2).find_map(|w| {
            edge_of(w[0], w[1])
                .filter(|e| e.implicit.is_none())
                .and_then(|e| e.span)
        });
        let mut msg = format!("dependency cycle: {}", names.join(" -> "));
        if !implicit_notes.is_empty() {
            msg.push_str(&format!(" ({})", implicit_notes.join("; ")));
        }
        let mut hint = String::from(
            "`a -> b` means `a` waits until `b` is ready, so no node of a cycle can ever start; remove one of these dependencies",
        );
        if !implicit_notes.is_empty() {
            hint.push_str(", or stop reading that node's address in the template");
        }
        self.rep.emit(
            Diagnostic::error(Code::DependencyCycle, msg)
                .with_path("dependencies")
                .with_hint(hint),
            first_explicit.or(at),
        );
    }

    /// An implementation whose `resource` or `config_management` section matches more
    /// than one auth data entry would fail at deployment: say so now.
    fn ambiguous_credentials(
        &mut self,
        draft: &InfraDraft,
        defs: &NodeDefs,
        origins: Option<&DefOrigins>,
        kept: &[Vec<usize>],
        auth: &AuthData,
    ) {
        if auth.is_empty() {
            return;
        }
        let mut done: HashSet<(&str, usize)> = HashSet::new();
        for (n, node) in draft.nodes.iter().enumerate() {
            let Some(t) = node.type_name.as_deref() else {
                continue;
            };
            let Some(impls) = defs.get(t) else {
                continue;
            };
            for &k in &kept[n] {
                let Some(imp) = impls.get(k) else {
                    continue;
                };
                if !done.insert((t, imp.index)) {
                    continue;
                }
                let impl_ix = origins
                    .and_then(|o| o.types.get(t))
                    .and_then(|o| o.impls.get(imp.index).copied());
                let sections = [
                    (PluginKind::ResourceHandler, Some(&imp.resource)),
                    (PluginKind::ConfigManager, imp.config_management.as_ref()),
                ];
                for (kind, section) in sections {
                    let Some(section) = section else {
                        continue;
                    };
                    let found = auth.matching(kind, section);
                    if found.len() < 2 {
                        continue;
                    }
                    let locations: Vec<&str> = found.iter().map(|i| i.location.as_str()).collect();
                    let at = impl_ix
                        .and_then(|ix| self.tree.get(ix, kind.section()))
                        .map(|(key, _)| self.tree.span(key));
                    self.rep.emit(
                        Diagnostic::error(
                            Code::AmbiguousCredentials,
                            format!(
                                "{} auth data entries match this `{}` section: {}",
                                found.len(),
                                kind.section(),
                                name_list(&locations, 5)
                            ),
                        )
                        .with_path(format!("node_def:{t}[{}].{}", imp.index, kind.section()))
                        .with_hint("exactly one entry may match; add a selector that tells them apart (e.g. `endpoint` or `name`, with the section's value)"),
                        at,
                    );
                }
            }
        }
    }
}

/// A JSON value for messages: strings without quotes.
fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reachability queries over a growing graph without reallocating per query.
struct Reach {
    stamp: Vec<u32>,
    round: u32,
    queue: Vec<usize>,
}

impl Reach {
    fn new(n: usize) -> Self {
        Self {
            stamp: vec![0; n],
            round: 0,
            queue: Vec::new(),
        }
    }

    /// Whether `from` (transitively) depends on `to`.
    fn reaches(&mut self, deps: &[Vec<usize>], from: usize, to: usize) -> bool {
        self.round += 1;
        self.queue.clear();
        self.queue.push(from);
        self.stamp[from] = self.round;
        while let Some(x) = self.queue.pop() {
            for &y in &deps[x] {
                if y == to {
                    return true;
                }
                if self.stamp[y] != self.round {
                    self.stamp[y] = self.round;
                    self.queue.push(y);
                }
            }
        }
        false
    }
}
