//! Live progress of a build or destroy, rendered from engine events.
//!
//! Three renderings: a live per-node table redrawn in place on a terminal; one line per
//! node milestone when stderr is not a terminal; JSON lines on stdout with `--output json`.
//! `--quiet` prints nothing here (errors are reported by the command).

use occopus_model::event::{Event, EventKind};
use occopus_model::{NodeId, NodeName};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Lines,
    Json,
    Quiet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Waiting,
    Creating,
    Created,
    Ready,
    Dropping,
    Dropped,
    Skipped,
    Failed,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Creating => "creating",
            Phase::Created => "starting",
            Phase::Ready => "ready",
            Phase::Dropping => "dropping",
            Phase::Dropped => "dropped",
            Phase::Skipped => "skipped",
            Phase::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
struct Inst {
    phase: Phase,
    since: Instant,
    detail: String,
    /// Primary address, once created.
    address: String,
}

#[derive(Debug, Clone)]
struct Row {
    name: NodeName,
    instances: BTreeMap<NodeId, Inst>,
    /// Node-level phase when there is no instance yet (waiting, skipped).
    phase: Phase,
    detail: String,
}

/// Progress renderer. Feed it every event; call [`Progress::finish`] at the end.
pub struct Progress {
    mode: Mode,
    rows: Vec<Row>,
    /// Row of each node name (events arrive by name; O(1) per event at any size).
    index: HashMap<NodeName, usize>,
    start: Instant,
    drawn: usize,
    last_draw: Option<Instant>,
    out: Box<dyn Write + Send>,
    json_out: Box<dyn Write + Send>,
    max_rows: usize,
}

impl Progress {
    /// A renderer writing the human views to stderr and JSON to stdout.
    pub fn new(mode: Mode, nodes: &[NodeName]) -> Self {
        Self::with_writers(
            mode,
            nodes,
            Box::new(std::io::stderr()),
            Box::new(std::io::BufWriter::new(std::io::stdout())),
        )
    }

    pub fn with_writers(
        mode: Mode,
        nodes: &[NodeName],
        out: Box<dyn Write + Send>,
        json_out: Box<dyn Write + Send>,
    ) -> Self {
        let rows: Vec<Row> = nodes
            .iter()
            .map(|n| Row {
                name: n.clone(),
                instances: BTreeMap::new(),
                phase: Phase::Waiting,
                detail: String::new(),
            })
            .collect();
        let index = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        Self {
            mode,
            rows,
            index,
            start: Instant::now(),
            drawn: 0,
            last_draw: None,
            out,
            json_out,
            max_rows: 24,
        }
    }

    fn row(&mut self, name: &NodeName) -> &mut Row {
        if let Some(&i) = self.index.get(name) {
            return &mut self.rows[i];
        }
        self.index.insert(name.clone(), self.rows.len());
        self.rows.push(Row {
            name: name.clone(),
            instances: BTreeMap::new(),
            phase: Phase::Waiting,
            detail: String::new(),
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    /// Take one event into account and render it. JSON lines are buffered: call
    /// [`Progress::flush`] once the events at hand are taken.
    pub fn event(&mut self, e: &Event) {
        match self.mode {
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(e) {
                    let _ = writeln!(self.json_out, "{line}");
                }
                return;
            }
            Mode::Quiet => return,
            Mode::Live | Mode::Lines => {}
        }
        let now = Instant::now();
        let mut line: Option<String> = None;
        let elapsed = self.start.elapsed();
        match &e.kind {
            EventKind::NodeCreating {
                node,
                node_id,
                resource_type,
            } => {
                let r = self.row(node);
                r.instances.insert(
                    node_id.clone(),
                    Inst {
                        phase: Phase::Creating,
                        since: now,
                        detail: resource_type.clone(),
                        address: String::new(),
                    },
                );
            }
            EventKind::NodeCreated {
                node,
                node_id,
                addresses,
            } => {
                let detail = addresses.primary.clone().unwrap_or_default();
                self.set(node, node_id, Phase::Created, detail.clone(), now);
                if let Some(i) = self.row(node).instances.get_mut(node_id) {
                    i.address = detail;
                }
            }
            EventKind::NodeWaiting {
                node,
                node_id,
                report,
            } => {
                if let Some(i) = self.row(node).instances.get_mut(node_id) {
                    i.detail = report.clone();
                }
            }
            EventKind::NodeRetry {
                node,
                node_id,
                attempt,
                message,
            } => {
                if let Some(i) = self.row(node).instances.get_mut(node_id) {
                    i.detail = format!("retry {attempt}: {message}");
                }
            }
            EventKind::NodeReady { node, node_id, .. } => {
                let addr = self
                    .row(node)
                    .instances
                    .get(node_id)
                    .map(|i| i.address.clone())
                    .unwrap_or_default();
                self.set(node, node_id, Phase::Ready, addr.clone(), now);
                line = Some(format!("{:<24} ready    {node_id} {addr}", node.as_str()));
            }
            EventKind::NodeFailed {
                node,
                node_id,
                message,
            } => {
                self.set(node, node_id, Phase::Failed, first_line(message), now);
                line = Some(format!(
                    "{:<24} FAILED   {node_id}: {}",
                    node.as_str(),
                    first_line(message)
                ));
            }
            EventKind::NodeSkipped { node, because } => {
                let r = self.row(node);
                r.phase = Phase::Skipped;
                r.detail = format!("not started: {because} failed");
                line = Some(format!(
                    "{:<24} skipped  (depends on {because}, which failed)",
                    node.as_str()
                ));
            }
            EventKind::NodeDropping { node, node_id } => {
                self.set(node, node_id, Phase::Dropping, String::new(), now);
            }
            EventKind::NodeDropped { node, node_id } => {
                self.set(node, node_id, Phase::Dropped, String::new(), now);
                line = Some(format!("{:<24} dropped  {node_id}", node.as_str()));
            }
            EventKind::Warning { node, message } => {
                let who = node.as_ref().map(|n| format!("{n}: ")).unwrap_or_default();
                line = Some(format!("warning: {who}{message}"));
            }
            EventKind::InfraFailed { message, .. } => {
                line = Some(format!("build failed: {}", first_line(message)));
            }
            _ => {}
        }
        match self.mode {
            Mode::Lines => {
                if let Some(l) = line {
                    let _ = writeln!(self.out, "[{:>7.1}s] {l}", elapsed.as_secs_f64());
                }
            }
            Mode::Live => {
                let due = self
                    .last_draw
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(80));
                // Failures show at once; everything else at most every 80 ms, so a
                // large build does not redraw once per node.
                let important = matches!(
                    e.kind,
                    EventKind::NodeFailed { .. } | EventKind::NodeSkipped { .. }
                );
                if due || important {
                    self.draw(now);
                }
            }
            Mode::Json | Mode::Quiet => {}
        }
    }

    fn set(&mut self, node: &NodeName, id: &NodeId, phase: Phase, detail: String, now: Instant) {
        let r = self.row(node);
        let e = r.instances.entry(id.clone()).or_insert(Inst {
            phase,
            since: now,
            detail: String::new(),
            address: String::new(),
        });
        e.phase = phase;
        e.since = now;
        if !detail.is_empty() {
            e.detail = detail;
        }
    }

    /// Write out buffered JSON lines.
    pub fn flush(&mut self) {
        let _ = self.json_out.flush();
    }

    /// Redraw the live table (no-op in other modes).
    pub fn tick(&mut self) {
        if self.mode == Mode::Live {
            self.draw(Instant::now());
        }
    }

    fn draw(&mut self, now: Instant) {
        self.last_draw = Some(now);
        let mut lines = Vec::new();
        let mut counts: BTreeMap<Phase, usize> = BTreeMap::new();
        for r in &self.rows {
            if r.instances.is_empty() {
                *counts.entry(r.phase).or_default() += 1;
            }
            for i in r.instances.values() {
                *counts.entry(i.phase).or_default() += 1;
            }
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(p, n)| format!("{n} {}", p.label()))
            .collect();
        lines.push(format!(
            "\x1b[1m{:>6.1}s\x1b[0m  {}",
            now.duration_since(self.start).as_secs_f64(),
            summary.join(", ")
        ));
        for (shown, r) in self.rows.iter().enumerate() {
            if shown >= self.max_rows {
                lines.push(format!("  ... {} more nodes", self.rows.len() - shown));
                break;
            }
            if r.instances.is_empty() {
                lines.push(format!(
                    "  {:<24} {:<9} {}",
                    r.name.as_str(),
                    r.phase.label(),
                    r.detail
                ));
                continue;
            }
            for (id, i) in &r.instances {
                let secs = now.duration_since(i.since).as_secs();
                let colour = match i.phase {
                    Phase::Ready => "\x1b[32m",
                    Phase::Failed => "\x1b[31m",
                    _ => "\x1b[33m",
                };
                lines.push(format!(
                    "  {:<24} {colour}{:<9}\x1b[0m {:<8} {:>4}s  {}",
                    r.name.as_str(),
                    i.phase.label(),
                    short_id(id),
                    secs,
                    truncate(&i.detail, 70)
                ));
            }
        }
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            buf.push_str("\x1b[2K");
            buf.push_str(l);
            buf.push('\n');
        }
        // Clear leftovers when the table shrank.
        for _ in lines.len()..self.drawn {
            buf.push_str("\x1b[2K\n");
        }
        let extra = self.drawn.saturating_sub(lines.len());
        if extra > 0 {
            buf.push_str(&format!("\x1b[{extra}A"));
        }
        self.drawn = lines.len();
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }

    /// Final rendering.
    pub fn finish(&mut self) {
        if self.mode == Mode::Live {
            self.draw(Instant::now());
        }
        let _ = self.out.flush();
        let _ = self.json_out.flush();
    }
}

fn short_id(id: &NodeId) -> &str {
    let s = id.as_str();
    &s[..s.len().min(8)]
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn truncate(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= n {
        line.to_string()
    } else {
        let mut t: String = line.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus_model::{Addresses, InfraId};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            at_ms: 0,
            infra_id: InfraId::new("i"),
            kind,
        }
    }

    fn name(s: &str) -> NodeName {
        NodeName::parse(s).unwrap()
    }

    #[test]
    fn lines_mode_reports_milestones() {
        let err = Buf::default();
        let out = Buf::default();
        let mut p = Progress::with_writers(
            Mode::Lines,
            &[name("db"), name("web")],
            Box::new(err.clone()),
            Box::new(out.clone()),
        );
        let id = NodeId::new("0123456789");
        p.event(&ev(EventKind::NodeCreating {
            node: name("db"),
            node_id: id.clone(),
            resource_type: "sim".into(),
        }));
        p.event(&ev(EventKind::NodeCreated {
            node: name("db"),
            node_id: id.clone(),
            addresses: Addresses {
                primary: Some("10.0.0.1".into()),
                ..Default::default()
            },
        }));
        p.event(&ev(EventKind::NodeReady {
            node: name("db"),
            node_id: id,
            elapsed_ms: 5,
        }));
        p.event(&ev(EventKind::NodeSkipped {
            node: name("web"),
            because: name("api"),
        }));
        p.finish();
        let t = err.text();
        assert!(
            t.contains("db") && t.contains("ready") && t.contains("10.0.0.1"),
            "{t}"
        );
        assert!(t.contains("skipped  (depends on api"), "{t}");
        assert!(out.text().is_empty());
    }

    #[test]
    fn json_mode_writes_event_lines_to_stdout() {
        let err = Buf::default();
        let out = Buf::default();
        let mut p = Progress::with_writers(
            Mode::Json,
            &[name("db")],
            Box::new(err.clone()),
            Box::new(out.clone()),
        );
        p.event(&ev(EventKind::InfraReady { elapsed_ms: 3 }));
        assert_eq!(
            out.text(),
            "{\"at_ms\":0,\"infra_id\":\"i\",\"event\":\"infraready\",\"elapsed_ms\":3}\n"
        );
        assert!(err.text().is_empty());
    }

    #[test]
    fn live_mode_redraws_in_place() {
        let err = Buf::default();
        let mut p = Progress::with_writers(
            Mode::Live,
            &[name("db")],
            Box::new(err.clone()),
            Box::new(Buf::default()),
        );
        p.tick();
        p.event(&ev(EventKind::NodeSkipped {
            node: name("db"),
            because: name("x"),
        }));
        let t = err.text();
        assert!(
            t.contains("\x1b[2A") || t.contains("\x1b[1A"),
            "cursor moves up to redraw: {t:?}"
        );
        assert!(t.contains("skipped"));
    }
}
