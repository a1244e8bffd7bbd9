//! Jinja2-compatible rendering (minijinja) with Occopus's template namespace.
//!
//! Owns: the template environment (functions `getip`, `getprivip`, `getipall`, `cut`,
//! `find_node_id`, `cmd`; filter `b64encode`), rendering of strings and of whole
//! sections, the strict/lenient treatment of undefined names, and static inspection of
//! templates (syntax check, names a template refers to) for `validate`.
//!
//! Must not: know where addresses come from (callers pass a [`Lookup`]), read files,
//! or run commands unless the operator enabled `cmd()`.

mod namespace;
mod render;

pub use namespace::{InstanceView, Lookup, Namespace, NoInstances};
pub use render::{Options, Renderer, TemplateError, Undefined, is_template};
