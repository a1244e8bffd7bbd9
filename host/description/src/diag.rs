//! Diagnostics: one problem found in a description, node definition or auth data file,
//! with where it is, why it is a problem and what to do about it.
//!
//! Owns: the stable codes, the compiler-style text rendering and the JSON shape. Must not:
//! decide what is a problem (the validators do) or print anything itself.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a problem is. Errors stop a load; warnings are reported with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input cannot be used as written.
    Error,
    /// Worth knowing; the input is still used.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($(#[$m:meta])* $variant:ident = $text:literal, $summary:literal;)*) => {
        /// A stable short identifier of a kind of problem (`unknown-key`). Tools may match on
        /// it; messages may change, codes do not.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$m])* #[doc = $summary] $variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in diagnostics (`unknown-key`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// One line saying what the code means (for documentation and `--explain`).
            pub fn summary(self) -> &'static str {
                match self {
                    $(Code::$variant => $summary,)*
                }
            }
        }
    };
}

codes! {
    FileUnreadable = "file-unreadable", "a file cannot be read (the OS error is included)";
    YamlSyntax = "yaml-syntax", "the file is not valid YAML";
    MultipleDocuments = "multiple-documents", "a file holds more than one YAML document";
    DuplicateKey = "duplicate-key", "a mapping has the same key twice";
    RecursiveAlias = "recursive-alias", "an alias refers to a node that contains it";
    TooLarge = "too-large", "nesting is too deep or aliases expand to too much data";
    UnknownTag = "unknown-tag", "a YAML tag other than `!yaml_import`, `!text_import` or a core tag";
    ImportMissing = "import-missing", "a file named by `!yaml_import`/`!text_import` cannot be read";
    ImportUrl = "import-url", "an import has no `url`, or not a `file://` one";
    ImportCycle = "import-cycle", "files import each other";
    WrongType = "wrong-type", "a value has the wrong type (e.g. a string where a list is expected)";
    MissingKey = "missing-key", "a required key is missing";
    UnknownKey = "unknown-key", "a key that is not allowed here (with a did-you-mean)";
    InvalidName = "invalid-name", "a name is not 1 to 63 letters, digits or `-`";
    DuplicateNode = "duplicate-node", "two nodes have the same name";
    NoNodes = "no-nodes", "the description has no nodes";
    MissingUserId = "missing-user-id", "`user_id` is missing (Occopus 1.10 crashes without it)";
    BadScaling = "bad-scaling", "`scaling.min`/`max` is not a non-negative integer";
    ScalingAdjusted = "scaling-adjusted", "scaling limits were raised the way Occopus does";
    BadDependency = "bad-dependency", "a dependency is not `[dependent, dependee]` or `{connection: ...}`";
    UnknownNode = "unknown-node", "a dependency names a node that is not in the description";
    SelfDependency = "self-dependency", "a node depends on itself";
    DuplicateDependency = "duplicate-dependency", "the same dependency is written twice";
    DependencyCycle = "dependency-cycle", "dependencies form a cycle (the cycle is printed)";
    BadNodeDefKey = "bad-node-def-key", "a node definition key is not `node_def:<type>`";
    EmptyNodeDefinition = "empty-node-definition", "a `node_def:<type>` list has no implementation";
    MissingNodeDefinition = "missing-node-definition", "a node's `type` has no `node_def:<type>`";
    FilterMatchesNothing = "filter-matches-nothing", "a node's `filter` keeps no implementation";
    UnknownType = "unknown-type", "a section `type` that is not known";
    NoPlugin = "no-plugin", "no loaded plugin handles a section `type`";
    PluginSchema = "plugin-schema", "a plugin's schema rejects a field of a section";
    TemplateSyntax = "template-syntax", "a Jinja2 template does not parse";
    UndefinedName = "undefined-name", "a template uses a name Occopus does not define for it";
    GetipUnknownNode = "getip-unknown-node", "`getip('x')` (or `getprivip`, `getipall`, `find_node_id`) names no node";
    GetipSelf = "getip-self", "a node reads its own address in its templates";
    ImplicitDependency = "implicit-dependency", "a dependency was added because a template reads another node's address";
    AmbiguousCredentials = "ambiguous-credentials", "more than one auth data entry matches a section";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, with where it is (file, line, column, field path), what is wrong and a hint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem.
    pub code: Code,
    /// The file as named on the command line (or joined to it for imports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column (characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The field, as `nodes[1].scaling.min` or `node_def:web[0].resource.image_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What to do about it.
    pub hint: Option<String>,
    /// The source line, for the snippet (never set for credential files).
    #[serde(skip)]
    pub(crate) snippet: Option<String>,
    /// Caret width under the snippet.
    #[serde(skip)]
    pub(crate) width: u32,
    /// Sort key: the order in which the file was read.
    #[serde(skip)]
    pub(crate) file_order: u32,
}

impl Diagnostic {
    /// A diagnostic without a location.
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            file: None,
            line: None,
            column: None,
            path: None,
            message: message.into(),
            hint: None,
            snippet: None,
            width: 1,
            file_order: u32::MAX,
        }
    }

    /// An error without a location.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A warning without a location.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    /// Set the field path.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Set the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self) -> (u32, u32, u32) {
        (
            self.file_order,
            self.line.unwrap_or(u32::MAX),
            self.column.unwrap_or(u32::MAX),
        )
    }
}

impl fmt::Display for Diagnostic {
    /// Compiler style:
    ///
    /// ```text
    /// error[unknown-key]: unknown key `mim` in `scaling`
    ///  --> infra.yaml:7:7
    ///   |
    /// 7 |       mim: 2
    ///   |       ^^^
    ///   = field: nodes[1].scaling.mim
    ///   = hint: did you mean `min`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}[{}]: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )?;
        let gutter = self.line.map_or(1, |l| l.to_string().len());
        let pad = " ".repeat(gutter);
        if let Some(file) = &self.file {
            match (self.line, self.column) {
                (Some(l), Some(c)) => writeln!(f, "{pad}--> {file}:{l}:{c}")?,
                (Some(l), None) => writeln!(f, "{pad}--> {file}:{l}")?,
                _ => writeln!(f, "{pad}--> {file}")?,
            }
        }
        if let (Some(line), Some(src)) = (self.line, &self.snippet) {
            let src = src.replace('\t', " ");
            writeln!(f, "{pad} |")?;
            writeln!(f, "{line} | {}", src.trim_end())?;
            let col = self.column.unwrap_or(1).max(1) as usize;
            let avail = src.chars().count().saturating_sub(col - 1).max(1);
            let width = (self.width as usize).clamp(1, avail);
            writeln!(f, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
        }
        if let Some(p) = &self.path {
            writeln!(f, "{pad} = field: {p}")?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "{pad} = hint: {h}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics, sorted by file (in the order files were read) and position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Add every diagnostic of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    /// Whether some diagnostic has this code.
    pub fn contains(&self, code: Code) -> bool {
        self.0.iter().any(|d| d.code == code)
    }

    /// Only the warnings.
    pub fn warnings(&self) -> Diagnostics {
        Diagnostics(self.0.iter().filter(|d| !d.is_error()).cloned().collect())
    }

    /// The diagnostics as a vector.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }

    /// JSON array of diagnostics (`severity`, `code`, `file`, `line`, `column`, `path`,
    /// `message`, `hint`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Sort by file order, line and column; keeps the order of equal positions.
    pub(crate) fn sort(&mut self) {
        self.0.sort_by_key(Diagnostic::sort_key);
    }

    /// A one-line count: `2 errors, 1 warning`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let (e, w) = (self.error_count(), self.warning_count());
        match (e, w) {
            (0, 0) => "no problems".into(),
            (e, 0) => plural(e, "error"),
            (0, w) => plural(w, "warning"),
            (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
        }
    }
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic, separated by blank lines, then the summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        writeln!(f, "{}", self.summary())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// `did you mean `x`?` for a misspelt name, if a candidate is close.
pub(crate) fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    // Sorted, so that ties always suggest the same name.
    let mut sorted: Vec<&str> = candidates.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    occopus_model::suggest::closest(wanted, sorted).map(|s| format!("did you mean `{s}`?"))
}

/// A hint: `did you mean `x`? ` (when a candidate is close) followed by `rest`.
pub(crate) fn suggest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    rest: &str,
) -> String {
    match did_you_mean(wanted, candidates) {
        Some(s) => format!("{s} {rest}"),
        None => rest.to_string(),
    }
}

/// `a`, `b` and `c` (at most `max` names, then "and N more").
pub(crate) fn name_list<S: AsRef<str>>(names: &[S], max: usize) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(max)
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    let rest = names.len().saturating_sub(max);
    match (shown.len(), rest) {
        (0, _) => String::new(),
        (1, 0) => shown[0].clone(),
        (_, 0) => {
            let (last, init) = shown
                .split_last()
                .map_or((String::new(), &[][..]), |(l, i)| (l.clone(), i));
            format!("{} and {last}", init.join(", "))
        }
        (_, r) => format!("{} and {r} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_compiler_style() {
        let mut d = Diagnostic::error(Code::UnknownKey, "unknown key `mim` in `scaling`")
            .with_path("nodes[1].scaling.mim")
            .with_hint("did you mean `min`?");
        d.file = Some("infra.yaml".into());
        d.line = Some(7);
        d.column = Some(7);
        d.snippet = Some("      mim: 2".into());
        d.width = 3;
        assert_eq!(
            d.to_string(),
            "error[unknown-key]: unknown key `mim` in `scaling`\n --> infra.yaml:7:7\n  |\n7 |       mim: 2\n  |       ^^^\n  = field: nodes[1].scaling.mim\n  = hint: did you mean `min`?\n"
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["code"], "unknown-key");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["line"], 7);
        assert!(json.get("snippet").is_none());
    }

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c}");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn sorting_and_summary() {
        let mut ds = Diagnostics::new();
        let mut a = Diagnostic::warning(Code::NoNodes, "a");
        a.file_order = 1;
        a.line = Some(3);
        let mut b = Diagnostic::error(Code::WrongType, "b");
        b.file_order = 0;
        b.line = Some(9);
        ds.push(a);
        ds.push(b);
        ds.push(Diagnostic::error(Code::WrongType, "c"));
        ds.sort();
        let msgs: Vec<_> = ds.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs, ["b", "a", "c"]);
        assert_eq!(ds.summary(), "2 errors, 1 warning");
        assert_eq!(name_list(&["a", "b", "c"], 2), "`a`, `b` and 1 more");
        assert_eq!(name_list(&["a", "b"], 5), "`a` and `b`");
    }
}
