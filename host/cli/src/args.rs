//! Command-line arguments (clap only; no behaviour here).
//!
//! Two front doors: `occopus <command>` and the Occopus 1.10 command names
//! (`occopus-build`, `occopus-destroy`, `occopus-import`) when the binary is invoked under
//! those names (a symlink or copy), with Occopus's flags.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "occopus",
    version,
    about = "Deploy and keep alive infrastructures of interdependent nodes described in Occopus files",
    long_about = "Occopus reads an infrastructure description (nodes, dependencies, scaling, \
                  variables) and node definitions (a cloud resource, contextualisation, health \
                  checks per node type), creates the nodes in dependency order and waits for each \
                  to be healthy before starting what depends on it. Cloud backends, health \
                  checkers and config managers are sandboxed WebAssembly plugins.",
    after_help = "Occopus 1.10 command names work too: occopus-build, occopus-destroy, occopus-import."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Directory holding infrastructure state [default: the user's data dir + /occopus]
    #[arg(long, global = true, env = "OCCOPUS_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also load plugins from DIR (repeatable; OCCOPUS_PLUGIN_PATH adds more, colon-separated)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Operator configuration file (plugin grants and limits, defaults)
    #[arg(long, global = true, env = "OCCOPUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Credentials file in Occopus's auth_data.yaml format
    #[arg(
        long = "auth-data",
        visible_alias = "auth_data_path",
        global = true,
        env = "OCCOPUS_AUTH_DATA_PATH",
        value_name = "FILE"
    )]
    pub auth_data: Option<PathBuf>,
    /// Output format: human-readable text, or JSON (data and events as JSON lines on stdout)
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Print only errors (and the data a command produces)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v, -vv)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Undefined names in templates: an error (strict) or empty text like Occopus 1.10 (lenient)
    #[arg(long = "jinja-undefined", global = true, value_enum, default_value_t = UndefinedArg::Strict)]
    pub jinja_undefined: UndefinedArg,
    /// Allow templates to call cmd(), which runs a command on this machine
    #[arg(long, global = true)]
    pub allow_cmd: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UndefinedArg {
    Strict,
    Lenient,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an infrastructure description and its node definitions; report every problem
    Validate(DescArgs),
    /// Show what `build` would create, drop and keep, without touching anything
    Plan(PlanArgs),
    /// Create an infrastructure (or update one with -i) and wait until every node is ready
    Build(BuildArgs),
    /// Destroy an infrastructure: every node, in reverse dependency order
    Destroy(DestroyArgs),
    /// List infrastructures, or show the nodes of one with their live state
    Status(StatusArgs),
    /// Print the dependency graph as Graphviz DOT or Mermaid
    Graph(GraphArgs),
    /// Store node definitions for later builds (like occopus-import)
    Import(ImportArgs),
    /// Show the log of a node instance (local backend)
    Logs(LogsArgs),
    /// Inspect the loaded plugins
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

#[derive(Debug, Clone, Args)]
pub struct DescArgs {
    /// Infrastructure description (YAML)
    #[arg(value_name = "INFRA_FILE")]
    pub infra: PathBuf,
    /// Node definitions file [default: nodes/node_definitions.yaml beside the description,
    /// else those stored by `import`]
    #[arg(long, short = 'n', value_name = "FILE")]
    pub nodes: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub desc: DescArgs,
    /// Plan an update of this existing infrastructure
    #[arg(
        short = 'i',
        long = "infra-id",
        visible_alias = "infra_id",
        value_name = "ID"
    )]
    pub infra_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub desc: DescArgs,
    /// Update this existing infrastructure instead of creating a new one
    #[arg(
        short = 'i',
        long = "infra-id",
        visible_alias = "infra_id",
        value_name = "ID"
    )]
    pub infra_id: Option<String>,
    /// On failure keep what was created instead of rolling it back
    #[arg(long)]
    pub keep_on_failure: bool,
    /// At most N node instances are created at once
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// A node not ready this many seconds after its creation started fails
    #[arg(long, value_name = "SECONDS")]
    pub create_timeout: Option<u64>,
    /// Accepted for Occopus compatibility; nodes are always created concurrently
    #[arg(long, hide = true)]
    pub parallelize: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// The infrastructure id (as printed by build)
    #[arg(value_name = "ID", required_unless_present = "infra_id_flag")]
    pub infra_id: Option<String>,
    /// The infrastructure id (Occopus's -i form)
    #[arg(
        short = 'i',
        long = "infra-id",
        visible_alias = "infra_id",
        value_name = "ID"
    )]
    pub infra_id_flag: Option<String>,
    /// An infrastructure that is not there (already destroyed, never built) is success
    #[arg(long)]
    pub missing_ok: bool,
}

impl DestroyArgs {
    pub fn id(&self) -> Option<&str> {
        self.infra_id.as_deref().or(self.infra_id_flag.as_deref())
    }
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Show this infrastructure's nodes (without: list all infrastructures)
    #[arg(value_name = "ID")]
    pub infra_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub desc: DescArgs,
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Node definitions file (`node_def:<type>` lists)
    #[arg(value_name = "NODE_DEFINITIONS")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The infrastructure id
    #[arg(value_name = "ID")]
    pub infra_id: String,
    /// Node name (all its instances) or node id
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Show the last N lines of each log
    #[arg(long, short = 'n', value_name = "N", default_value_t = 200)]
    pub lines: usize,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List loaded plugins, their types and grants, and plugins that failed to load
    List,
    /// Show one plugin: version, ABI, types with their section schema, capabilities, digest
    Inspect {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// `occopus-build infra_def [--parallelize] [-i ID] [--cfg CFG] [--auth_data_path FILE]`
#[derive(Debug, Parser)]
#[command(
    name = "occopus-build",
    version,
    about = "Build an infrastructure (Occopus 1.10 interface)"
)]
pub struct OccopusBuild {
    #[arg(value_name = "INFRA_DEF")]
    pub infra_def: PathBuf,
    #[arg(long)]
    pub parallelize: bool,
    #[arg(short = 'i', long = "infra_id", visible_alias = "infra-id")]
    pub infra_id: Option<String>,
    #[command(flatten)]
    pub common: OccopusCommon,
}

/// `occopus-destroy -i ID [--cfg CFG] [--auth_data_path FILE]`
#[derive(Debug, Parser)]
#[command(
    name = "occopus-destroy",
    version,
    about = "Destroy an infrastructure (Occopus 1.10 interface)"
)]
pub struct OccopusDestroy {
    #[arg(
        short = 'i',
        long = "infra_id",
        visible_alias = "infra-id",
        required = true
    )]
    pub infra_id: String,
    #[command(flatten)]
    pub common: OccopusCommon,
}

/// `occopus-import datafile [--cfg CFG]`
#[derive(Debug, Parser)]
#[command(
    name = "occopus-import",
    version,
    about = "Import node definitions (Occopus 1.10 interface)"
)]
pub struct OccopusImport {
    #[arg(value_name = "DATAFILE")]
    pub datafile: PathBuf,
    #[command(flatten)]
    pub common: OccopusCommon,
}

#[derive(Debug, Clone, Args)]
pub struct OccopusCommon {
    /// Occopus configuration file (accepted; Python object tags in it are ignored)
    #[arg(long = "cfg", value_name = "CFG_PATH")]
    pub cfg: Option<PathBuf>,
    #[arg(
        long = "auth_data_path",
        visible_alias = "auth-data",
        env = "OCCOPUS_AUTH_DATA_PATH"
    )]
    pub auth_data_path: Option<PathBuf>,
}

/// Parse the process arguments, choosing the front door by the program name.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    parse_from(args)
}

/// Like [`parse`] but from a given argument list (tests).
pub fn parse_from(args: Vec<std::ffi::OsString>) -> Cli {
    let prog = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let global = |common: &OccopusCommon| GlobalArgs {
        state_dir: std::env::var_os("OCCOPUS_STATE_DIR").map(PathBuf::from),
        plugin_dirs: Vec::new(),
        config: common
            .cfg
            .clone()
            .or_else(|| std::env::var_os("OCCOPUS_CONFIG").map(PathBuf::from)),
        auth_data: common.auth_data_path.clone(),
        output: OutputFormat::Text,
        quiet: false,
        verbose: 0,
        jinja_undefined: UndefinedArg::Strict,
        allow_cmd: false,
    };
    match prog.as_str() {
        "occopus-build" => {
            let a = OccopusBuild::parse_from(args);
            Cli {
                global: global(&a.common),
                command: Command::Build(BuildArgs {
                    desc: DescArgs {
                        infra: a.infra_def,
                        nodes: None,
                    },
                    infra_id: a.infra_id,
                    keep_on_failure: false,
                    parallelism: None,
                    create_timeout: None,
                    parallelize: a.parallelize,
                }),
            }
        }
        "occopus-destroy" => {
            let a = OccopusDestroy::parse_from(args);
            Cli {
                global: global(&a.common),
                command: Command::Destroy(DestroyArgs {
                    infra_id: Some(a.infra_id),
                    infra_id_flag: None,
                    missing_ok: false,
                }),
            }
        }
        "occopus-import" => {
            let a = OccopusImport::parse_from(args);
            Cli {
                global: global(&a.common),
                command: Command::Import(ImportArgs { file: a.datafile }),
            }
        }
        _ => Cli::parse_from(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        parse_from(args.iter().map(Into::into).collect())
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        OccopusBuild::command().debug_assert();
        OccopusDestroy::command().debug_assert();
        OccopusImport::command().debug_assert();
    }

    #[test]
    fn occopus_names_map_to_commands() {
        let c = cli(&[
            "/usr/bin/occopus-build",
            "infra.yaml",
            "-i",
            "abc",
            "--parallelize",
        ]);
        match c.command {
            Command::Build(b) => {
                assert_eq!(b.infra_id.as_deref(), Some("abc"));
                assert_eq!(b.desc.infra, PathBuf::from("infra.yaml"));
            }
            other => panic!("{other:?}"),
        }
        match cli(&["occopus-destroy", "-i", "xyz"]).command {
            Command::Destroy(d) => assert_eq!(d.id(), Some("xyz")),
            other => panic!("{other:?}"),
        }
        match cli(&["occopus-import", "nodes.yaml"]).command {
            Command::Import(i) => assert_eq!(i.file, PathBuf::from("nodes.yaml")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn native_commands() {
        match cli(&[
            "occopus",
            "--plugin-dir",
            "a",
            "build",
            "x.yaml",
            "--plugin-dir",
            "b",
        ])
        .command
        {
            Command::Build(b) => assert!(b.infra_id.is_none()),
            other => panic!("{other:?}"),
        }
        // Global options work before or after the subcommand (repeat them on one side: clap
        // lets the later side win).
        let c = cli(&[
            "occopus",
            "--plugin-dir",
            "a",
            "--plugin-dir",
            "b",
            "build",
            "x.yaml",
        ]);
        assert_eq!(
            c.global.plugin_dirs,
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        let c = cli(&["occopus", "build", "x.yaml", "--plugin-dir", "b"]);
        assert_eq!(c.global.plugin_dirs, vec![PathBuf::from("b")]);
        match cli(&["occopus", "destroy", "-i", "q"]).command {
            Command::Destroy(d) => assert_eq!(d.id(), Some("q")),
            other => panic!("{other:?}"),
        }
    }
}
