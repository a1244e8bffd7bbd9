//! `occopus graph`: the dependency graph of a description as Graphviz DOT or Mermaid text.
//!
//! Arrows point in deployment order: from the node depended on to the node that depends on
//! it. Edges implied only by a `getip('...')` reference are dashed. Owns text rendering
//! only; must not read files.

use occopus_model::ResolvedInfra;
use std::fmt::Write;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart (GitHub renders it in Markdown).
    Mermaid,
}

fn label(infra: &ResolvedInfra, name: &str) -> String {
    let Some(n) = infra.node(name) else {
        return name.to_string();
    };
    let mut s = format!("{}\\n{}", n.name, n.type_name);
    if n.scaling.min != 1 || n.scaling.max != 1 {
        let _ = write!(s, " [{}..{}]", n.scaling.min, n.scaling.max);
    }
    s
}

fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Render the graph of `infra`.
pub fn render(infra: &ResolvedInfra, format: GraphFormat) -> String {
    let mut s = String::new();
    match format {
        GraphFormat::Dot => {
            let _ = writeln!(s, "digraph {} {{", dot_quote(&infra.name));
            let _ = writeln!(s, "  rankdir=LR;");
            let _ = writeln!(s, "  node [shape=box, style=rounded];");
            for n in &infra.nodes {
                let _ = writeln!(
                    s,
                    "  {} [label={}];",
                    dot_quote(n.name.as_str()),
                    dot_quote(&label(infra, n.name.as_str()))
                );
            }
            for e in &infra.edges {
                let _ = writeln!(
                    s,
                    "  {} -> {}{};",
                    dot_quote(e.dependee.as_str()),
                    dot_quote(e.dependent.as_str()),
                    if e.implicit { " [style=dashed]" } else { "" }
                );
            }
            s.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            // Mermaid ids may not contain '-' safely in every renderer: use n<index>.
            let id = |name: &str| {
                infra
                    .nodes
                    .iter()
                    .position(|n| n.name.as_str() == name)
                    .map(|i| format!("n{i}"))
                    .unwrap_or_else(|| name.replace('-', "_"))
            };
            for n in &infra.nodes {
                let _ = writeln!(
                    s,
                    "  {}[\"{}\"]",
                    id(n.name.as_str()),
                    label(infra, n.name.as_str())
                        .replace("\\n", "<br/>")
                        .replace('"', "#quot;")
                );
            }
            for e in &infra.edges {
                let arrow = if e.implicit { "-.->" } else { "-->" };
                let _ = writeln!(
                    s,
                    "  {} {arrow} {}",
                    id(e.dependee.as_str()),
                    id(e.dependent.as_str())
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus_model::{Edge, NodeName, NodeSpec, Scaling};
    use serde_json::{Map, Value};

    fn node(name: &str, min: u32, max: u32) -> NodeSpec {
        NodeSpec {
            name: NodeName::parse(name).unwrap(),
            type_name: format!("{name}_node"),
            scaling: Scaling { min, max },
            filter: Map::new(),
            variables: Value::Null,
            implementations: Vec::new(),
        }
    }

    fn infra() -> ResolvedInfra {
        ResolvedInfra {
            name: "demo".into(),
            user_id: None,
            variables: Value::Null,
            nodes: vec![node("db", 1, 1), node("web-app", 2, 5)],
            edges: vec![Edge {
                dependent: NodeName::parse("web-app").unwrap(),
                dependee: NodeName::parse("db").unwrap(),
                mappings: Vec::new(),
                implicit: false,
            }],
        }
    }

    #[test]
    fn dot_points_in_deployment_order() {
        let d = render(&infra(), GraphFormat::Dot);
        assert!(d.starts_with("digraph \"demo\" {"), "{d}");
        assert!(d.contains("\"db\" -> \"web-app\";"), "{d}");
        assert!(d.contains("web-app\\nweb-app_node [2..5]"), "{d}");
    }

    #[test]
    fn mermaid_uses_safe_ids() {
        let m = render(&infra(), GraphFormat::Mermaid);
        assert!(m.contains("n0 --> n1"), "{m}");
        assert!(m.contains("n1[\"web-app<br/>web-app_node [2..5]\"]"), "{m}");
    }
}
