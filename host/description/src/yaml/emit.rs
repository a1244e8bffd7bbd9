//! Writes a tree back as block-style YAML: how a `!yaml_import`ed (or inline) cloud-config
//! mapping becomes user-data text, the way Occopus does it (`"#cloud-config\n"` + a YAML
//! dump of the mapping).
//!
//! Plain scalars are written as they were read, so a value keeps the type it had in the
//! file for cloud-init (`yes` stays a YAML 1.1 boolean rather than turning into the string
//! `"yes"`). Multi-line strings become literal blocks (`|`), which keeps scripts readable
//! and lets rendered values contain quotes. Comments are lost, as with Occopus.
//!
//! Owns: YAML output and its quoting rules. Must not: render templates.

use super::resolve::{Resolved, is_timestamp, resolve_plain};
use super::{Ix, Kind, MAX_EXPANDED, Scalar, Style, TooLarge, Tree};
use std::fmt::Write as _;

/// `"#cloud-config\n"` followed by the node dumped as block YAML.
pub(crate) fn cloud_config(tree: &Tree, ix: Ix) -> Result<String, TooLarge> {
    let mut e = Emitter {
        tree,
        out: String::from("#cloud-config\n"),
        budget: MAX_EXPANDED,
    };
    e.root(ix)?;
    Ok(e.out)
}

struct Emitter<'t> {
    tree: &'t Tree,
    out: String,
    budget: usize,
}

/// Where the cursor is when a value is written.
#[derive(Clone, Copy)]
enum At {
    /// Right after `key:`; the key starts at this column.
    AfterKey(usize),
    /// Right after `- `; the item's content starts at this column.
    AfterDash(usize),
}

impl Emitter<'_> {
    fn tick(&mut self) -> Result<(), TooLarge> {
        if self.budget == 0 {
            return Err(TooLarge);
        }
        self.budget -= 1;
        Ok(())
    }

    fn root(&mut self, ix: Ix) -> Result<(), TooLarge> {
        self.tick()?;
        match self.tree.kind(ix) {
            Kind::Map(e) if !e.is_empty() => self.entries(e, 0, false),
            Kind::Seq(i) if !i.is_empty() => self.items(i, 0, false),
            _ => self.value(ix, At::AfterDash(0)),
        }
    }

    fn indent(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn entries(
        &mut self,
        entries: &[(Ix, Ix)],
        indent: usize,
        inline_first: bool,
    ) -> Result<(), TooLarge> {
        for (i, (k, v)) in entries.iter().enumerate() {
            self.tick()?;
            if i > 0 || !inline_first {
                self.indent(indent);
            }
            let key = match self.tree.as_scalar(*k) {
                Some(s) => inline_scalar(s),
                None => double_quoted(&self.tree.to_json(*k)?.to_string()),
            };
            self.out.push_str(&key);
            self.out.push(':');
            self.value(*v, At::AfterKey(indent))?;
        }
        Ok(())
    }

    fn items(&mut self, items: &[Ix], indent: usize, inline_first: bool) -> Result<(), TooLarge> {
        for (i, item) in items.iter().enumerate() {
            self.tick()?;
            if i > 0 || !inline_first {
                self.indent(indent);
            }
            self.out.push_str("- ");
            self.value(*item, At::AfterDash(indent + 2))?;
        }
        Ok(())
    }

    fn value(&mut self, ix: Ix, at: At) -> Result<(), TooLarge> {
        self.tick()?;
        let sep = match at {
            At::AfterKey(_) => " ",
            At::AfterDash(_) => "",
        };
        match self.tree.kind(ix) {
            Kind::Map(e) if !e.is_empty() => match at {
                At::AfterKey(k) => {
                    self.out.push('\n');
                    self.entries(e, k + 2, false)
                }
                At::AfterDash(c) => self.entries(e, c, true),
            },
            Kind::Seq(items) if !items.is_empty() => match at {
                At::AfterKey(k) => {
                    self.out.push('\n');
                    self.items(items, k, false)
                }
                At::AfterDash(c) => self.items(items, c, true),
            },
            Kind::Map(_) => {
                let _ = writeln!(self.out, "{sep}{{}}");
                Ok(())
            }
            Kind::Seq(_) => {
                let _ = writeln!(self.out, "{sep}[]");
                Ok(())
            }
            Kind::Scalar(s) => {
                let content_indent = match at {
                    At::AfterKey(k) => k + 2,
                    At::AfterDash(c) => c,
                };
                match literal_block(s) {
                    Some(text) => self.literal(text, sep, content_indent),
                    None => {
                        let _ = writeln!(self.out, "{sep}{}", inline_scalar(s));
                    }
                }
                Ok(())
            }
            Kind::Pending | Kind::Invalid | Kind::Alias(_) | Kind::Import(_) => {
                let _ = writeln!(self.out, "{sep}null");
                Ok(())
            }
        }
    }

    fn literal(&mut self, text: &str, sep: &str, indent: usize) {
        let chomp = if !text.ends_with('\n') {
            "-"
        } else if text.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        let body = text.strip_suffix('\n').unwrap_or(text);
        let needs_indicator = body
            .split('\n')
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.starts_with([' ', '\t']))
            || body
                .split('\n')
                .take_while(|l| l.trim().is_empty())
                .any(|l| !l.is_empty());
        let indicator = if needs_indicator { "2" } else { "" };
        let _ = writeln!(self.out, "{sep}|{indicator}{chomp}");
        // The explicit indicator counts from the parent's indentation, which is two columns
        // left of the content in both positions we write (`key: |2`, `- |2`).
        for line in body.split('\n') {
            if !line.is_empty() {
                self.indent(indent);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
    }
}

/// The text to write for a multi-line string as a literal block, if it can be one.
fn literal_block(s: &Scalar) -> Option<&str> {
    let string_like = matches!(s.value, Resolved::Str) && (s.style != Style::Plain || s.tagged);
    let t = s.text.as_str();
    let ok = string_like
        && t.contains('\n')
        && t.chars().any(|c| !c.is_whitespace())
        && t.chars().all(|c| c == '\n' || c == '\t' || !is_special(c));
    ok.then_some(t)
}

/// A scalar on one line: plain when that reads back as the same value, else double-quoted.
fn inline_scalar(s: &Scalar) -> String {
    match s.value {
        Resolved::Null => {
            if s.style == Style::Plain && !s.text.is_empty() && !s.tagged {
                s.text.clone()
            } else {
                "null".into()
            }
        }
        Resolved::Bool(b) if s.tagged => b.to_string(),
        Resolved::Int(i) if s.tagged => i.to_string(),
        Resolved::Float(f) if s.tagged && f.is_finite() => format!("{f:?}"),
        Resolved::Str if s.tagged || s.style != Style::Plain || s.text.contains('\n') => {
            if plain_safe(&s.text) {
                s.text.clone()
            } else {
                double_quoted(&s.text)
            }
        }
        // Plain, untagged: write it as it was read.
        _ => s.text.clone(),
    }
}

fn is_special(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

/// Whether a string can be written plain and still read back as the same string.
fn plain_safe(s: &str) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    !first.is_whitespace()
        && !last.is_whitespace()
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && last != ':'
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c == '\t' || c == '\n' || is_special(c))
        && resolve_plain(s) == Resolved::Str
        && !is_timestamp(s)
        && s != "<<"
        && s != "="
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if is_special(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Reporter;
    use crate::source::Sources;

    /// Dump `text`, parse the dump back, and compare the data.
    fn round_trip(text: &str) -> String {
        let mut sources = Sources::default();
        let mut rep = Reporter::default();
        let mut tree = Tree::default();
        let f = sources.add("a.yaml".into(), None, text.into(), false);
        let root = tree.build(text, f, false, &mut rep).root.unwrap();
        let dumped = cloud_config(&tree, root).unwrap();
        let g = sources.add("b.yaml".into(), None, dumped.clone(), false);
        let back = tree.build(&dumped, g, false, &mut rep).root.unwrap();
        let d = rep.finish(&sources);
        assert!(d.is_empty(), "{d}\n{dumped}");
        assert_eq!(
            tree.to_json(root).unwrap(),
            tree.to_json(back).unwrap(),
            "dump:\n{dumped}"
        );
        dumped
    }

    #[test]
    fn dumps_read_back_as_the_same_data() {
        let out = round_trip(
            "package_update: yes\nruncmd:\n  - echo {{ getip('db') }}\n  - [sh, -c, 'a: b']\nwrite_files:\n- path: /x\n  content: |\n    #!/bin/sh\n      indented\n\n    {% raw %}{{range}}{% endraw %}\n  permissions: '0600'\nempty: {}\nnone: []\nn: ~\nq: \"yes\"\nnum: '5'\nts: '2021-01-01'\ntab: \"a\\tb\"\nlead: \"  x\\n  y\\n\"\nkeep: \"a\\n\\n\"\nstrip: \"a\\nb\"\nnested:\n  - - a\n    - b\n  - k: v\n    l:\n      - 1\n",
        );
        assert!(
            out.starts_with("#cloud-config\npackage_update: yes\n"),
            "{out}"
        );
        assert!(
            out.contains("  content: |\n    #!/bin/sh\n      indented\n\n"),
            "{out}"
        );
        assert!(out.contains("q: \"yes\"\n"), "{out}");
        assert!(out.contains("permissions: \"0600\"\n"), "{out}");
    }

    #[test]
    fn awkward_strings() {
        round_trip(
            "a: \"- x\"\nb: \"x: y\"\nc: \"#x\"\nd: \" x\"\ne: \"\"\nf: \"\\n\"\ng: \"{{ x }}\"\nh: \"\\u0001\"\n",
        );
        round_trip("- |2\n   a\n  b\n- \"\\n\\n  x\\n\"\n- |-\n  z\n");
        round_trip("k: !!str 5\nl: !!int '7'\nm: !!float 1\n");
    }
}
