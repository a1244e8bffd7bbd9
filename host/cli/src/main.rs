//! `occopus`: the command-line interface. Parses arguments, calls the `occopus` library,
//! renders progress and results. Holds no orchestration logic of its own.
//!
//! Output contract: data on stdout (the infrastructure id of `build`, tables, JSON with
//! `--output json`), messages and progress on stderr. Exit codes: 0 success, 1 failure
//! (invalid input, failed build, unknown infrastructure, ...), 2 usage error, 3 `status`
//! of an infrastructure that is not entirely ready.

/// `println!` to stdout that survives a closed pipe (`occopus status ID | head`): what
/// the reader did not take is dropped and the command carries on (a `build` must not stop
/// half-way because its reader went away). Other write errors are reported on stderr.
macro_rules! out {
    () => {
        out!("")
    };
    ($($arg:tt)*) => {
        out_raw!("{}\n", format_args!($($arg)*))
    };
}

/// `print!` to stdout, like [`out!`].
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            eprintln!("error: cannot write to stdout: {e}");
        }
    }};
}

mod args;
mod log;
mod progress;

use args::{Cli, Command, GlobalArgs, GraphFormat, OutputFormat, PluginsCommand, UndefinedArg};
use occopus::{Error, Event, InfraId, Loaded, Occopus};
use progress::{Mode, Progress};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of a failed command.
const FAILURE: u8 = 1;
/// Exit code of `status` when something is not ready.
const NOT_READY: u8 = 3;

fn main() -> ExitCode {
    let cli = args::parse();
    log::install(log::level(
        cli.global.quiet,
        cli.global.verbose,
        std::env::var("RUST_LOG").ok().as_deref(),
    ));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let json = cli.global.output == OutputFormat::Json;
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e, json);
            ExitCode::from(FAILURE)
        }
    }
}

/// Print an error: diagnostics as they format themselves, others as `error: ...`.
fn report(e: &Error, json: bool) {
    if json {
        let v = match e {
            Error::Invalid(d) => json!({"error": "invalid", "diagnostics": d.to_json()}),
            Error::Build(b) => {
                json!({"error": "build-failed", "message": b.to_string(), "infra_id": b.infra_id})
            }
            other => json!({"error": kind(other), "message": other.to_string()}),
        };
        out!("{v}");
    }
    match e {
        Error::Invalid(d) => eprint!("{d}"),
        other => eprintln!("error: {other}"),
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Invalid(_) => "invalid",
        Error::Config(_) => "config",
        Error::Runtime(_) => "runtime",
        Error::Engine(_) => "engine",
        Error::Build(_) => "build-failed",
        Error::NotFound(_) => "not-found",
        Error::Io(_) => "io",
    }
}

async fn open(g: &GlobalArgs, plugins: bool) -> Result<Occopus, Error> {
    // The lock file names its holder as `occopus build` (the engine adds the operation).
    let mut b = Occopus::builder()
        .lenient_templates(g.jinja_undefined == UndefinedArg::Lenient)
        .allow_cmd(g.allow_cmd)
        .command("occopus");
    if let Some(d) = &g.state_dir {
        b = b.state_dir(d);
    }
    for d in &g.plugin_dirs {
        b = b.plugin_dir(d);
    }
    if let Some(c) = &g.config {
        b = b.config_file(c);
    }
    if let Some(a) = &g.auth_data {
        b = b.auth_data(a);
    }
    if !plugins {
        b = b.without_plugins();
    }
    let occ = b.open().await?;
    if g.verbose > 0 {
        eprintln!("state directory: {}", occ.state_dir().display());
        if let Some(c) = occ.config_file() {
            eprintln!("operator config: {}", c.display());
        }
        if let Some(a) = occ.auth_data_path() {
            eprintln!("auth data: {}", a.display());
        }
    }
    if plugins && !g.quiet {
        for e in occ.plugin_load_errors() {
            eprintln!("warning: plugin not loaded: {e}");
        }
    }
    Ok(occ)
}

fn warn(g: &GlobalArgs, loaded: &Loaded) {
    if !g.quiet && !loaded.warnings.is_empty() {
        eprint!("{}", loaded.warnings);
    }
}

fn no_plugins_hint(occ: &Occopus) -> Option<String> {
    occ.plugins().is_empty().then(|| {
        "no plugins are loaded, so resource sections were not checked against plugin schemas \
         (build them with `cargo xtask build-plugins` or pass --plugin-dir DIR)"
            .to_string()
    })
}

async fn run(cli: Cli) -> Result<u8, Error> {
    let g = &cli.global;
    let json = g.output == OutputFormat::Json;
    match &cli.command {
        Command::Validate(d) => {
            let occ = open(g, true).await?;
            let loaded = occ.load(&d.infra, d.nodes.as_deref()).await?;
            warn(g, &loaded);
            let infra = &loaded.infra;
            let hint = no_plugins_hint(&occ);
            if json {
                out!(
                    "{}",
                    json!({
                        "valid": true,
                        "infra_name": infra.name,
                        "nodes": infra.nodes.iter().map(|n| json!({
                            "name": n.name, "type": n.type_name,
                            "min": n.scaling.min, "max": n.scaling.max,
                            "implementations": n.implementations.len(),
                        })).collect::<Vec<_>>(),
                        "dependencies": infra.edges.len(),
                        "warnings": loaded.warnings.to_json(),
                        "schemas_checked": hint.is_none(),
                    })
                );
            } else if !g.quiet {
                let names: Vec<&str> = infra.nodes.iter().map(|n| n.name.as_str()).collect();
                out!(
                    "{}: infrastructure `{}` is valid: {} node(s) ({}), {} dependenc{}",
                    d.infra.display(),
                    infra.name,
                    infra.nodes.len(),
                    names.join(", "),
                    infra.edges.len(),
                    if infra.edges.len() == 1 { "y" } else { "ies" }
                );
                if let Some(h) = hint {
                    eprintln!("note: {h}");
                }
            }
            Ok(0)
        }
        Command::Plan(p) => {
            let occ = open(g, true).await?;
            let loaded = occ.load(&p.desc.infra, p.desc.nodes.as_deref()).await?;
            warn(g, &loaded);
            let id = p.infra_id.as_deref().map(InfraId::new);
            let plan = occ.plan(&loaded, id.as_ref()).await?;
            if json {
                out!("{}", serde_json::to_string(&plan).unwrap_or_default());
            } else {
                match &id {
                    Some(id) => out!("plan for infrastructure `{}` ({id}):", loaded.infra.name),
                    None => out!("plan for a new infrastructure `{}`:", loaded.infra.name),
                }
                out_raw!("{plan}");
                out!(
                    "{} to create, {} to drop, {} to keep",
                    plan.creates(),
                    plan.drops(),
                    plan.keeps()
                );
            }
            Ok(0)
        }
        Command::Build(b) => {
            let occ = open(g, true).await?;
            let loaded = occ.load(&b.desc.infra, b.desc.nodes.as_deref()).await?;
            warn(g, &loaded);
            let nodes: Vec<_> = loaded.infra.nodes.iter().map(|n| n.name.clone()).collect();
            let opts = occopus::BuildOptions {
                infra_id: b.infra_id.as_deref().map(InfraId::new),
                keep_on_failure: b.keep_on_failure,
                parallelism: b.parallelism,
                create_timeout: b.create_timeout.map(Duration::from_secs),
            };
            let result = with_progress(g, &occ, &nodes, "building", async {
                occ.build_file(&loaded, &b.desc.infra, opts).await
            })
            .await;
            let report = result?;
            if json {
                out!(
                    "{}",
                    json!({"infra_id": report.infra_id, "created": report.created,
                    "dropped": report.dropped, "kept": report.kept,
                    "elapsed_ms": report.elapsed.as_millis() as u64})
                );
            } else {
                if !g.quiet {
                    eprintln!(
                        "infrastructure `{}` is ready: {} created, {} dropped, {} kept in {:.1}s",
                        loaded.infra.name,
                        report.created,
                        report.dropped,
                        report.kept,
                        report.elapsed.as_secs_f64()
                    );
                    endpoints(&occ, &report.infra_id).await;
                }
                // Occopus prints the infrastructure id on stdout for scripts.
                out!("{}", report.infra_id);
            }
            Ok(0)
        }
        Command::Destroy(d) => {
            let Some(id) = d.id() else {
                eprintln!("error: which infrastructure? give its id (see `occopus status`)");
                return Ok(2);
            };
            let id = InfraId::new(id);
            let occ = open(g, true).await?;
            let recorded = match occ.status_nodes(&id).await {
                Err(e @ Error::Engine(occopus::EngineError::NotFound(_))) if d.missing_ok => {
                    if json {
                        out!(
                            "{}",
                            json!({"infra_id": id.as_str(), "dropped": 0, "missing": true})
                        );
                    } else if !g.quiet {
                        eprintln!("nothing to destroy: {e}");
                    }
                    return Ok(0);
                }
                other => other?,
            };
            let report =
                with_progress(g, &occ, &recorded, "destroying", occ.destroy(&id, false)).await?;
            if json {
                out!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else if !g.quiet {
                eprintln!(
                    "infrastructure {id} destroyed ({} node instance(s) dropped)",
                    report.dropped
                );
            }
            Ok(0)
        }
        Command::Status(s) => {
            let occ = open(g, s.infra_id.is_some()).await?;
            match &s.infra_id {
                None => {
                    let list = occ.list().await?;
                    if json {
                        out!("{}", serde_json::to_string(&list).unwrap_or_default());
                    } else if list.is_empty() {
                        eprintln!("no infrastructures in {}", occ.state_dir().display());
                    } else {
                        out!("{:<38} {:<24} {:<20} DESCRIPTION", "ID", "NAME", "CREATED");
                        for i in &list {
                            out!(
                                "{:<38} {:<24} {:<20} {}",
                                i.infra_id.as_str(),
                                i.name,
                                format_time(i.created_at_ms),
                                i.description_path.as_deref().unwrap_or("-")
                            );
                        }
                    }
                    Ok(0)
                }
                Some(id) => {
                    let id = InfraId::new(id.as_str());
                    let st = occ.status(&id).await?;
                    let ready = st.status == occopus_model::NodeStatus::Ready;
                    if json {
                        out!("{}", serde_json::to_string(&st).unwrap_or_default());
                    } else {
                        out!(
                            "infrastructure `{}` ({}): {}",
                            st.name,
                            st.infra_id,
                            st.status
                        );
                        out!(
                            "  {:<20} {:<10} {:<10} {:<16} DETAIL",
                            "NODE",
                            "INSTANCE",
                            "STATUS",
                            "ADDRESS"
                        );
                        for i in &st.instances {
                            let addr = i.addresses.primary.as_deref().unwrap_or("-");
                            let detail = i
                                .message
                                .clone()
                                .or_else(|| i.health.clone())
                                .unwrap_or_default();
                            out!(
                                "  {:<20} {:<10} {:<10} {:<16} {}",
                                i.node.as_str(),
                                &i.node_id.as_str()[..i.node_id.as_str().len().min(8)],
                                i.status.to_string(),
                                addr,
                                detail.lines().next().unwrap_or("")
                            );
                        }
                    }
                    Ok(if ready { 0 } else { NOT_READY })
                }
            }
        }
        Command::Graph(gr) => {
            let occ = open(g, true).await?;
            let loaded = occ.load(&gr.desc.infra, gr.desc.nodes.as_deref()).await?;
            warn(g, &loaded);
            let f = match gr.format {
                GraphFormat::Dot => occopus::GraphFormat::Dot,
                GraphFormat::Mermaid => occopus::GraphFormat::Mermaid,
            };
            out_raw!("{}", occopus::render_graph(&loaded.infra, f));
            Ok(0)
        }
        Command::Import(i) => {
            let occ = open(g, true).await?;
            let (types, warnings) = occ.import(&i.file).await?;
            if !g.quiet && !warnings.is_empty() {
                eprint!("{warnings}");
            }
            if json {
                out!("{}", json!({"imported": types}));
            } else {
                for t in &types {
                    out!("{t}");
                }
                if !g.quiet {
                    eprintln!(
                        "imported {} node type(s) into {}",
                        types.len(),
                        occ.state_dir().display()
                    );
                }
            }
            Ok(0)
        }
        Command::Logs(l) => {
            let occ = open(g, false).await?;
            let logs = occ
                .logs(&InfraId::new(l.infra_id.as_str()), &l.node)
                .await?;
            let many = logs.len() > 1;
            let mut out = std::io::stdout().lock();
            for log in &logs {
                if many {
                    let _ = writeln!(out, "==> {} ({}) <==", log.node, log.node_id);
                }
                let text = log.tail(l.lines)?;
                if text.is_empty() && !g.quiet {
                    eprintln!(
                        "note: no local log for instance {} of `{}` (its backend keeps logs elsewhere, or it has not started)",
                        log.node_id, log.node
                    );
                }
                let _ = out.write_all(text.as_bytes());
            }
            Ok(0)
        }
        Command::Plugins(p) => {
            let occ = open(g, true).await?;
            plugins(&occ, p, json, g.quiet)
        }
    }
}

fn plugins(occ: &Occopus, cmd: &PluginsCommand, json: bool, quiet: bool) -> Result<u8, Error> {
    let all = occ.plugins();
    match cmd {
        PluginsCommand::List => {
            if json {
                let errors: Vec<String> = occ
                    .plugin_load_errors()
                    .iter()
                    .map(|e| e.to_string())
                    .collect();
                out!("{}", json!({"plugins": all, "errors": errors}));
                return Ok(0);
            }
            if all.is_empty() && !quiet {
                eprintln!(
                    "no plugins found (build them with `cargo xtask build-plugins`, or pass --plugin-dir DIR)"
                );
            }
            out!(
                "{:<12} {:<9} {:<17} {:<21} {:<24} GRANTED",
                "NAME",
                "VERSION",
                "KIND",
                "ABI",
                "TYPES"
            );
            for d in &all {
                let i = &d.info;
                let types: Vec<&str> = i.types.iter().map(|t| t.name.as_str()).collect();
                out!(
                    "{:<12} {:<9} {:<17} {:<21} {:<24} {}",
                    i.name,
                    i.version,
                    i.kind.to_string(),
                    i.abi,
                    types.join(","),
                    if i.granted.is_empty() {
                        "-".to_string()
                    } else {
                        i.granted.join(",")
                    }
                );
            }
            Ok(0)
        }
        PluginsCommand::Inspect { name } => {
            let Some(d) = all.iter().find(|d| &d.info.name == name) else {
                let names: Vec<&str> = all.iter().map(|d| d.info.name.as_str()).collect();
                return Err(Error::NotFound(format!(
                    "no plugin named `{name}` is loaded (loaded: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            if json {
                out!("{}", serde_json::to_string(d).unwrap_or_default());
                return Ok(0);
            }
            let i = &d.info;
            out!("name:        {}", i.name);
            out!("version:     {}", i.version);
            out!("kind:        {}", i.kind);
            out!("abi:         {}", i.abi);
            out!("description: {}", i.description);
            out!("file:        {}", d.path.display());
            out!("digest:      {}", i.digest);
            out!("cache:       {:?}", d.cache);
            out!("requested:   {}", list_or_dash(&i.requested));
            out!("granted:     {}", list_or_dash(&i.granted));
            for t in &i.types {
                out!("type `{}`, section schema:", t.name);
                out!(
                    "{}",
                    serde_json::to_string_pretty(&t.schema).unwrap_or_default()
                );
            }
            Ok(0)
        }
    }
}

fn list_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// Run `op` while rendering its events.
async fn with_progress<T>(
    g: &GlobalArgs,
    occ: &Occopus,
    nodes: &[occopus_model::NodeName],
    verb: &str,
    op: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let mode = if g.output == OutputFormat::Json {
        Mode::Json
    } else if g.quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    };
    // Every event, none lost: the JSON event log must be complete, however slowly it is
    // read.
    let mut rx = occ.listen();
    let mut progress = Progress::new(mode, nodes);
    let verb = verb.to_string();
    let quiet = g.quiet || mode == Mode::Json;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let renderer = tokio::spawn(async move {
        let mut announced = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut take = |progress: &mut Progress, e: Event| {
            if !announced && !quiet {
                announced = true;
                eprintln!("{verb} infrastructure {}", e.infra_id);
            }
            progress.event(&e);
        };
        let mut pause = false;
        loop {
            if std::mem::take(&mut pause) {
                // Events come in bursts (a thousand nodes starting at once): let a burst
                // pass before writing the next batch, rather than compete with it for
                // the CPU. The end of the operation cuts the pause short.
                tokio::select! {
                    _ = tokio::time::sleep(BATCH_PAUSE) => {}
                    _ = &mut stopped => {
                        while let Ok(e) = rx.try_recv() {
                            take(&mut progress, e);
                        }
                        break;
                    }
                }
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Some(e) => {
                        take(&mut progress, e);
                        // Take what else has arrived before writing it out.
                        while let Ok(e) = rx.try_recv() {
                            take(&mut progress, e);
                        }
                        progress.flush();
                        pause = true;
                    }
                    None => break,
                },
                _ = tick.tick() => progress.tick(),
                _ = &mut stopped => {
                    // The operation is over: everything it emitted is in the channel.
                    while let Ok(e) = rx.try_recv() {
                        take(&mut progress, e);
                    }
                    break;
                }
            }
        }
        progress
    });
    let result = op.await;
    let _ = stop.send(());
    if let Ok(mut p) = renderer.await {
        p.finish();
    }
    result
}

/// Least time between two batches of progress output.
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// After a build: each node's addresses, so the user knows where to go.
async fn endpoints(occ: &Occopus, id: &InfraId) {
    let Ok(st) = occ.status(id).await else {
        return;
    };
    eprintln!("endpoints:");
    for i in &st.instances {
        let a = &i.addresses;
        let mut parts = Vec::new();
        if let Some(p) = &a.primary {
            parts.push(p.clone());
        }
        if let Some(p) = &a.private
            && Some(p) != a.primary.as_ref()
        {
            parts.push(format!("private {p}"));
        }
        eprintln!(
            "  {:<20} {}",
            i.node.as_str(),
            if parts.is_empty() {
                "-".to_string()
            } else {
                parts.join(", ")
            }
        );
    }
}

fn format_time(ms: u64) -> String {
    // UTC, without a date crate: days since the epoch to a civil date.
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (public domain arithmetic).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_790_000_000_000), "2026-09-21 14:13:20");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
