//! A plain table rendered two ways: aligned text for the terminal and a Markdown table
//! for `docs/benchmarks.md`. Must not: compute figures.

/// Header plus rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Every column left-aligned (prose), instead of only the first (figures).
    pub prose: bool,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            prose: false,
        }
    }

    /// A table of text: every column left-aligned.
    pub fn prose(header: &[&str]) -> Self {
        Self {
            prose: true,
            ..Self::new(header)
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        w
    }

    /// Aligned columns: the first left-aligned, the others right-aligned (all left for
    /// prose).
    pub fn text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i].saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                if i > 0 && !self.prose {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1)));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// A GitHub-flavoured Markdown table (numbers right-aligned).
    pub fn markdown(&self) -> String {
        let esc = |c: &str| c.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out.push('|');
        for i in 0..self.header.len() {
            out.push_str(if i == 0 || self.prose {
                " --- |"
            } else {
                " ---: |"
            });
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_text_and_markdown() {
        let mut t = Table::new(&["shape", "time"]);
        t.row(vec!["chain".into(), "1.5 ms".into()]);
        t.row(vec!["fan-out".into(), "12.25 ms".into()]);
        let text = t.text();
        assert_eq!(
            text,
            "shape        time\n-----------------\nchain      1.5 ms\nfan-out  12.25 ms\n"
        );
        let md = t.markdown();
        assert!(md.starts_with("| shape | time |\n| --- | ---: |\n"), "{md}");
        assert!(md.contains("| fan-out | 12.25 ms |\n"), "{md}");
    }
}
