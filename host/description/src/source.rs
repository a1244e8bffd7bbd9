//! The text of every file read during one load, and positions inside them.
//!
//! Owns: file display names, line lookup for snippets, and the `sensitive` flag that keeps
//! credential files out of diagnostics. Must not: read files (the loader does) or judge
//! their content.

use std::path::PathBuf;

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileId(pub u32);

/// A range in one file. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub end_line: u32,
    pub end_col: u32,
}

impl Span {
    /// The first character of a file.
    pub fn file_start(file: FileId) -> Self {
        Self {
            file,
            line: 1,
            col: 1,
            end_line: 1,
            end_col: 2,
        }
    }

    /// How many columns a caret under this span covers on its first line (at least 1).
    pub fn width(&self) -> u32 {
        if self.end_line == self.line && self.end_col > self.col {
            self.end_col - self.col
        } else {
            1
        }
    }

    /// A one-character span at `line:col` of the same file.
    pub fn point(file: FileId, line: u32, col: u32) -> Self {
        Self {
            file,
            line,
            col,
            end_line: line,
            end_col: col + 1,
        }
    }
}

/// One file (or in-memory text) taking part in a load.
pub(crate) struct SourceFile {
    /// How the file is named in diagnostics (as the user gave it, or joined to it).
    pub display: String,
    /// Directory that relative imports inside this file resolve against.
    pub base_dir: Option<PathBuf>,
    pub text: String,
    /// Credentials: never quote its lines in diagnostics.
    pub sensitive: bool,
    line_starts: Vec<usize>,
}

/// Every file of one load.
#[derive(Default)]
pub(crate) struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(
        &mut self,
        display: String,
        base_dir: Option<PathBuf>,
        text: String,
        sensitive: bool,
    ) -> FileId {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        self.files.push(SourceFile {
            display,
            base_dir,
            text,
            sensitive,
            line_starts,
        });
        FileId(u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX))
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn display(&self, id: FileId) -> &str {
        &self.get(id).display
    }

    /// Line `line` (1-based) without its line break; `None` for sensitive files.
    pub fn line_text(&self, id: FileId, line: u32) -> Option<&str> {
        let f = self.get(id);
        if f.sensitive {
            return None;
        }
        f.line(line)
    }
}

impl SourceFile {
    fn line(&self, line: u32) -> Option<&str> {
        let i = (line as usize).checked_sub(1)?;
        let start = *self.line_starts.get(i)?;
        let end = self
            .line_starts
            .get(i + 1)
            .map_or(self.text.len(), |e| e.saturating_sub(1));
        let s = self.text.get(start..end)?;
        Some(s.strip_suffix('\r').unwrap_or(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_sensitive_files_are_hidden() {
        let mut s = Sources::default();
        let a = s.add("a.yaml".into(), None, "one\ntwo\r\nthree".into(), false);
        let b = s.add("auth.yaml".into(), None, "secret: x\n".into(), true);
        assert_eq!(s.line_text(a, 1), Some("one"));
        assert_eq!(s.line_text(a, 2), Some("two"));
        assert_eq!(s.line_text(a, 3), Some("three"));
        assert_eq!(s.line_text(a, 4), None);
        assert_eq!(s.line_text(a, 0), None);
        assert_eq!(s.line_text(b, 1), None);
    }
}
