//! A small document model (headings, paragraphs, lists, tables) rendered as terminal text
//! or as Markdown, and the number formats the benchmark report uses.
//!
//! Must not: compute figures or judge targets.

use super::measure::Stats;
use super::table::Table;

/// One block of the report.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    List(Vec<String>),
    Table(Table),
}

/// The report as a list of blocks.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn h(&mut self, level: u8, s: impl Into<String>) {
        self.blocks.push(Block::Heading(level, s.into()));
    }
    pub fn p(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Para(s.into()));
    }
    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }
    pub fn table(&mut self, t: Table) {
        self.blocks.push(Block::Table(t));
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Heading(l, s) => {
                    out.push_str(&"#".repeat(usize::from(*l)));
                    out.push(' ');
                    out.push_str(s);
                    out.push_str("\n\n");
                }
                Block::Para(s) => {
                    out.push_str(s);
                    out.push_str("\n\n");
                }
                Block::List(items) => {
                    for i in items {
                        out.push_str("- ");
                        out.push_str(i);
                        out.push('\n');
                    }
                    out.push('\n');
                }
                Block::Table(t) => {
                    out.push_str(&t.markdown());
                    out.push('\n');
                }
            }
        }
        out.trim_end().to_string() + "\n"
    }

    /// Terminal text: Markdown markers dropped, tables aligned.
    pub fn text(&self) -> String {
        let plain = |s: &str| s.replace('`', "").replace("**", "");
        let mut out = String::new();
        for b in &self.blocks {
            match b {
                Block::Heading(l, s) => {
                    let s = plain(s);
                    let rule = if *l <= 2 { '=' } else { '-' };
                    out.push_str(&format!(
                        "{s}\n{}\n\n",
                        rule.to_string().repeat(s.chars().count())
                    ));
                }
                Block::Para(s) => out.push_str(&format!("{}\n\n", plain(s))),
                Block::List(items) => {
                    for i in items {
                        out.push_str(&format!("  * {}\n", plain(i)));
                    }
                    out.push('\n');
                }
                Block::Table(t) => {
                    let mut t = t.clone();
                    for r in &mut t.rows {
                        for c in r.iter_mut() {
                            *c = plain(c);
                        }
                    }
                    out.push_str(&t.text());
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Seconds as a readable duration: `412 µs`, `35.2 ms`, `1.84 s`, `3 min 12 s`.
pub fn dur(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.0} µs", secs * 1e6)
    } else if secs < 0.1 {
        format!("{:.1} ms", secs * 1e3)
    } else if secs < 1.0 {
        format!("{:.0} ms", secs * 1e3)
    } else if secs < 120.0 {
        format!("{secs:.2} s")
    } else {
        format!("{} min {:.0} s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// Median with the range when there were several runs: `412 ms (398–430 ms)`.
pub fn dur_stats(s: &Stats) -> String {
    if s.runs > 1 {
        format!("{} ({}–{})", dur(s.median), dur(s.min), dur(s.max))
    } else {
        dur(s.median)
    }
}

/// KiB as MiB: `42.1 MiB`.
pub fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// A count with thousands separators: `10,000`.
pub fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `✓` or `✗`.
pub fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(dur(0.000_412), "412 µs");
        assert_eq!(dur(0.0352), "35.2 ms");
        assert_eq!(dur(0.412), "412 ms");
        assert_eq!(dur(1.844), "1.84 s");
        assert_eq!(dur(192.0), "3 min 12 s");
        assert_eq!(count(10_000), "10,000");
        assert_eq!(count(100), "100");
        assert_eq!(count(1_234_567), "1,234,567");
        let s = Stats::of([0.4, 0.41, 0.43]).unwrap();
        assert_eq!(dur_stats(&s), "410 ms (400 ms–430 ms)");
    }

    #[test]
    fn renders_markdown_and_text() {
        let mut d = Doc::default();
        d.h(1, "Title");
        d.p("Some `code`.");
        d.list(vec!["one".into()]);
        let md = d.markdown();
        assert_eq!(md, "# Title\n\nSome `code`.\n\n- one\n");
        let text = d.text();
        assert!(text.starts_with("Title\n=====\n\nSome code.\n"), "{text}");
    }
}
