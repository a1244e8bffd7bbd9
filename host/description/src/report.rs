//! Collects problems while files are checked, each with its span, and turns them into
//! sorted [`Diagnostics`] once every file has been read.
//!
//! Owns: attaching file names, lines, columns and snippets. Must not: decide what is a
//! problem.

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{Sources, Span};

/// Problems found so far, with their spans (resolved to text positions by [`finish`]).
///
/// [`finish`]: Reporter::finish
#[derive(Default)]
pub(crate) struct Reporter {
    items: Vec<(Diagnostic, Option<Span>)>,
    errors: usize,
}

impl Reporter {
    /// Record a problem at `span` (or without a location).
    pub fn emit(&mut self, d: Diagnostic, span: impl Into<Option<Span>>) {
        if d.is_error() {
            self.errors += 1;
        }
        self.items.push((d, span.into()));
    }

    pub fn error_count(&self) -> usize {
        self.errors
    }

    /// Attach locations and snippets, and sort.
    pub fn finish(self, sources: &Sources) -> Diagnostics {
        let mut out: Diagnostics = self
            .items
            .into_iter()
            .map(|(mut d, span)| {
                if let Some(s) = span {
                    d.file = Some(sources.display(s.file).to_string());
                    d.line = Some(s.line);
                    d.column = Some(s.col);
                    d.width = s.width();
                    d.snippet = sources.line_text(s.file, s.line).map(str::to_string);
                    d.file_order = s.file.0;
                }
                d
            })
            .collect();
        out.sort();
        out
    }
}
