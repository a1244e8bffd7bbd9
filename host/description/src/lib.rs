//! Occopus 1.10 descriptions in, [`ResolvedInfra`] out, with diagnostics that say where
//! and why.
//!
//! Reads an infrastructure description, its node definitions and (optionally) the auth
//! data, exactly as Occopus 1.10 accepts them (YAML with anchors/aliases, `!yaml_import`
//! and `!text_import`), validates them field by field and reports **every** problem of
//! every file at once as [`Diagnostics`] (file, line, column, field path, message, hint).
//! Templates are checked statically: syntax, names outside Occopus's namespace,
//! `variables.x` paths missing for a node, and `getip('node')` calls, which also add the
//! dependency a node needs on the node whose address it reads.
//!
//! ```no_run
//! use occopus_description::{LoadOptions, load};
//!
//! match load(&LoadOptions::new("infra.yaml"), None) {
//!     Ok(loaded) => println!("{} nodes, {}", loaded.infra.nodes.len(), loaded.warnings.summary()),
//!     Err(diags) => eprint!("{diags}"),
//! }
//! ```
//!
//! Owns: parsing with spans, validation, static template checks, auth data selection, the
//! diagnostic codes. Must not: render templates, contact clouds or run plugins (a
//! [`PluginHost`](occopus_model::plugin::PluginHost) is used only to check sections against
//! plugin schemas), or print anything.
//!
//! [`ResolvedInfra`]: occopus_model::ResolvedInfra

#![warn(missing_docs)]

mod auth;
mod check;
mod diag;
mod infra;
mod load;
mod nodedef;
mod report;
mod schema;
mod source;
mod templates;
mod yaml;

pub use auth::{AuthData, AuthError, AuthItem};
pub use diag::{Code, Diagnostic, Diagnostics, Severity};
pub use load::{
    Input, LoadOptions, Loaded, NodeDefSource, ParsedNodeDefs, load, parse_auth_data,
    parse_auth_data_str, parse_node_definitions, parse_node_definitions_str, parse_yaml,
};
pub use nodedef::NodeDefs;
