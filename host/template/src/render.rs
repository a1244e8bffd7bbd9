//! The rendering environment.

use crate::namespace::{Lookup, Namespace};
use base64::Engine as _;
use minijinja::value::{Object, Value as JValue};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How undefined names behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Undefined {
    /// An undefined name is an error naming it (our default).
    #[default]
    Strict,
    /// Occopus 1.10 / Jinja2 default: an undefined name renders as empty text.
    Lenient,
}

/// Operator choices for rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub undefined: Undefined,
    /// `cmd('...')` runs a command on the orchestrator's host; off unless enabled.
    pub allow_cmd: bool,
}

/// A rendering or template error. `line` is 1-based within the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", line.map(|l| format!(" (template line {l})")).unwrap_or_default())]
pub struct TemplateError {
    pub kind: TemplateErrorKind,
    pub message: String,
    pub line: Option<usize>,
    /// A suggestion for the user.
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateErrorKind {
    Syntax,
    /// A name the template uses is not defined.
    Undefined,
    /// A function failed (e.g. `getip` of a node with no instance yet).
    Function,
    Other,
}

/// Whether a string needs rendering at all (fast path: most values are plain text).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

const LOOKUP_KEY: &str = "__occopus_lookup";
const FUNCTIONS: &[&str] = &[
    "getip",
    "getprivip",
    "getipall",
    "cut",
    "find_node_id",
    "cmd",
];

struct LookupObj(Arc<dyn Lookup>);

impl std::fmt::Debug for LookupObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<lookup>")
    }
}

impl Object for LookupObj {}

/// A configured template environment. Cheap to share; build it once per process.
pub struct Renderer {
    env: Environment<'static>,
    opts: Options,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("opts", &self.opts)
            .finish()
    }
}

impl Renderer {
    pub fn new(opts: Options) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(match opts.undefined {
            Undefined::Strict => UndefinedBehavior::Strict,
            Undefined::Lenient => UndefinedBehavior::Lenient,
        });
        // Keep text exactly as written (Jinja2's defaults): no trailing-newline trimming.
        env.set_keep_trailing_newline(true);
        let strict = opts.undefined == Undefined::Strict;
        env.add_function("getip", move |state: &State, name: JValue| {
            first_instance(state, &name, strict, "getip").map(|(_, a)| match a.primary {
                Some(ip) => Ok(JValue::from(ip)),
                None => Err(fn_error(
                    "getip: the instance has no address yet".to_string(),
                )),
            })?
        });
        env.add_function("getprivip", move |state: &State, name: JValue| {
            first_instance(state, &name, strict, "getprivip").map(|(_, a)| {
                match a.private.or(a.primary) {
                    Some(ip) => Ok(JValue::from(ip)),
                    None => Err(fn_error(
                        "getprivip: the instance has no address yet".into(),
                    )),
                }
            })?
        });
        env.add_function("getipall", move |state: &State, name: JValue| {
            let views = instances_of(state, &name, strict, "getipall")?;
            Ok(JValue::from(
                views
                    .into_iter()
                    .filter_map(|v| v.addresses.primary)
                    .collect::<Vec<_>>(),
            ))
        });
        env.add_function(
            "find_node_id",
            move |state: &State, name: JValue, all: Option<bool>| {
                let views = instances_of(state, &name, strict, "find_node_id")?;
                let to_map = |v: &crate::InstanceView| {
                    let mut m = BTreeMap::new();
                    m.insert("node_id", JValue::from(v.node_id.clone()));
                    m.insert(
                        "resource_address",
                        JValue::from(v.addresses.primary.clone()),
                    );
                    m.insert("ip_address", JValue::from(v.addresses.private.clone()));
                    JValue::from(m)
                };
                if all.unwrap_or(false) {
                    Ok(JValue::from(views.iter().map(to_map).collect::<Vec<_>>()))
                } else {
                    views.first().map(to_map).ok_or_else(|| {
                        fn_error(format!("find_node_id: node `{name}` has no instance yet"))
                    })
                }
            },
        );
        env.add_function("cut", |s: String, start: Option<i64>, end: Option<i64>| {
            Ok::<_, Error>(py_slice(&s, start, end))
        });
        let allow_cmd = opts.allow_cmd;
        env.add_function("cmd", move |command: String| {
            if !allow_cmd {
                return Err(fn_error(
                    "cmd() is disabled: it runs a command on the orchestrator's host; enable it \
                     with `--allow-cmd` if you trust this description"
                        .into(),
                ));
            }
            run_cmd(&command)
        });
        env.add_filter("b64encode", |s: String| {
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        });
        Self { env, opts }
    }

    pub fn options(&self) -> Options {
        self.opts
    }

    /// Bind a namespace once; render many strings with it.
    pub fn bind<'r>(&'r self, ns: &Namespace) -> Bound<'r> {
        let mut ctx: BTreeMap<String, JValue> = ns
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), JValue::from_serialize(v)))
            .collect();
        ctx.insert(
            LOOKUP_KEY.into(),
            JValue::from_object(LookupObj(ns.lookup.clone())),
        );
        Bound {
            renderer: self,
            ctx: JValue::from(ctx),
            vars: ns.vars.clone(),
        }
    }

    /// Check the syntax of a template without rendering it.
    pub fn check_syntax(&self, src: &str) -> Result<(), TemplateError> {
        self.env
            .template_from_str(src)
            .map(|_| ())
            .map_err(|e| convert(&e, None))
    }

    /// Names the template reads from its context, with attribute paths
    /// (`variables.mysql_root_password`), excluding Occopus's functions and names the
    /// template defines itself (loop variables, `set`).
    pub fn referenced_names(&self, src: &str) -> Result<BTreeSet<String>, TemplateError> {
        let t = self
            .env
            .template_from_str(src)
            .map_err(|e| convert(&e, None))?;
        Ok(t.undeclared_variables(true)
            .into_iter()
            .filter(|n| !FUNCTIONS.contains(&n.split('.').next().unwrap_or("")))
            .collect())
    }
}

/// A renderer bound to one instance's namespace.
pub struct Bound<'r> {
    renderer: &'r Renderer,
    ctx: JValue,
    vars: Map<String, Value>,
}

impl Bound<'_> {
    /// Render one template string.
    pub fn render_str(&self, src: &str) -> Result<String, TemplateError> {
        if !is_template(src) {
            return Ok(src.to_string());
        }
        let env = &self.renderer.env;
        let tmpl = env.template_from_str(src).map_err(|e| convert(&e, None))?;
        tmpl.render(&self.ctx).map_err(|e| {
            let mut err = convert(&e, None);
            if e.kind() == ErrorKind::UndefinedError
                && let Some(name) = self.first_undefined(&tmpl)
            {
                err.message = format!("undefined name `{name}`");
                err.hint = Some(undefined_hint(&name));
            }
            err
        })
    }

    /// Render every string inside a JSON value (sections, attribute maps, lists);
    /// keys and non-string scalars are kept.
    pub fn render_value(&self, v: &Value) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::String(s) => Value::String(self.render_str(s)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.render_value(x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.render_value(x)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn first_undefined(&self, tmpl: &minijinja::Template<'_, '_>) -> Option<String> {
        let names = tmpl.undeclared_variables(true);
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        names.into_iter().find(|path| {
            let mut parts = path.split('.');
            let head = parts.next().unwrap_or("");
            if FUNCTIONS.contains(&head) {
                return false;
            }
            let mut cur = match self.vars.get(head) {
                Some(v) => v,
                None => return true,
            };
            for p in parts {
                match cur.get(p) {
                    Some(v) => cur = v,
                    None => return true,
                }
            }
            false
        })
    }
}

fn undefined_hint(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("variables.") {
        format!(
            "define `{rest}` under `variables` in the infrastructure description (or the node's \
             own `variables`); run with `--jinja-undefined=lenient` to render undefined names as \
             empty text like Occopus 1.10"
        )
    } else {
        "Occopus templates can use variables, node_id, name, infra_id, infra_name, user_id, \
         getip, getprivip, getipall, cut and b64encode; quote node names: getip('db')"
            .into()
    }
}

fn fn_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn lookup_of(state: &State) -> Result<Arc<dyn Lookup>, Error> {
    state
        .lookup(LOOKUP_KEY)
        .and_then(|v| v.downcast_object_ref::<LookupObj>().map(|o| o.0.clone()))
        .ok_or_else(|| fn_error("node lookups are not available here".into()))
}

fn instances_of(
    state: &State,
    name: &JValue,
    strict: bool,
    func: &str,
) -> Result<Vec<crate::InstanceView>, Error> {
    let lookup = lookup_of(state)?;
    if name.is_undefined() || name.is_none() {
        if strict {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                format!("{func}() was given an undefined name; quote node names: {func}('name')"),
            ));
        }
        // Occopus 1.10 looked up a falsy name as "any node": the first instance of the
        // first node that has one.
        for n in lookup.node_names() {
            if let Some(v) = lookup.instances(&n)
                && !v.is_empty()
            {
                return Ok(v);
            }
        }
        return Ok(Vec::new());
    }
    let Some(n) = name.as_str() else {
        return Err(fn_error(format!(
            "{func}() expects a node name, got `{name}`"
        )));
    };
    match lookup.instances(n) {
        Some(v) => Ok(v),
        None => Err(fn_error(format!(
            "{func}('{n}'): there is no node named `{n}` in this infrastructure (nodes: {})",
            lookup.node_names().join(", ")
        ))),
    }
}

fn first_instance(
    state: &State,
    name: &JValue,
    strict: bool,
    func: &str,
) -> Result<(String, occopus_model::Addresses), Error> {
    let v = instances_of(state, name, strict, func)?;
    match v.into_iter().next() {
        Some(i) => Ok((i.node_id, i.addresses)),
        None => Err(fn_error(format!(
            "{func}('{}'): node `{}` has no instance yet; make this node depend on it so it \
             is created (and ready) first",
            name, name
        ))),
    }
}

/// Python slice semantics over characters: `s[start:end]` with negative indices.
fn py_slice(s: &str, start: Option<i64>, end: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let a = start.map(norm).unwrap_or(0);
    let b = end.map(norm).unwrap_or(len);
    if a >= b {
        String::new()
    } else {
        chars[a as usize..b as usize].iter().collect()
    }
}

fn run_cmd(command: &str) -> Result<String, Error> {
    let mut parts = command.split_whitespace();
    let Some(prog) = parts.next() else {
        return Err(fn_error("cmd(): empty command".into()));
    };
    let out = std::process::Command::new(prog)
        .args(parts)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fn_error(format!("cmd('{command}'): {e}")))?;
    if !out.status.success() {
        return Err(fn_error(format!(
            "cmd('{command}') exited with {}",
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn convert(e: &Error, hint: Option<String>) -> TemplateError {
    let kind = match e.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape => TemplateErrorKind::Syntax,
        ErrorKind::UndefinedError | ErrorKind::UnknownFunction | ErrorKind::UnknownFilter => {
            TemplateErrorKind::Undefined
        }
        ErrorKind::InvalidOperation => TemplateErrorKind::Function,
        _ => TemplateErrorKind::Other,
    };
    let message = match e.detail() {
        Some(d) => d.to_string(),
        None => e.kind().to_string(),
    };
    TemplateError {
        kind,
        message,
        line: e.line(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InstanceView, NoInstances};
    use occopus_model::Addresses;
    use serde_json::json;

    struct Fixed;
    impl Lookup for Fixed {
        fn instances(&self, name: &str) -> Option<Vec<InstanceView>> {
            let mk = |id: &str, ip: &str, priv_ip: &str| InstanceView {
                node_id: id.into(),
                addresses: Addresses {
                    primary: Some(ip.into()),
                    private: Some(priv_ip.into()),
                    all: vec![ip.into()],
                },
            };
            match name {
                "db" => Some(vec![mk("n1", "10.0.0.1", "192.168.0.1")]),
                "web" => Some(vec![mk("w1", "10.0.0.2", "p2"), mk("w2", "10.0.0.3", "p3")]),
                "empty" => Some(vec![]),
                _ => None,
            }
        }
        fn node_names(&self) -> Vec<String> {
            vec!["empty".into(), "db".into(), "web".into()]
        }
    }

    fn ns() -> Namespace {
        Namespace::new(Arc::new(Fixed))
            .with("infra_id", "0123456789ab")
            .with("node_id", "nid")
            .with(
                "variables",
                json!({"message": "hi", "nested": {"port": 80}}),
            )
    }

    #[test]
    fn occopus_functions() {
        let r = Renderer::new(Options::default());
        let b = r.bind(&ns());
        assert_eq!(b.render_str("{{ getip('db') }}").unwrap(), "10.0.0.1");
        assert_eq!(b.render_str("{{getprivip('db')}}").unwrap(), "192.168.0.1");
        assert_eq!(
            b.render_str("{{ getipall('web') | join(',') }}").unwrap(),
            "10.0.0.2,10.0.0.3"
        );
        assert_eq!(b.render_str("{{cut(infra_id,0,4)}}").unwrap(), "0123");
        assert_eq!(b.render_str("{{ cut(infra_id,-2) }}").unwrap(), "ab");
        assert_eq!(b.render_str("{{ 'hi' | b64encode }}").unwrap(), "aGk=");
        assert_eq!(b.render_str("{{ variables.nested.port }}").unwrap(), "80");
        assert_eq!(
            b.render_str("{{ find_node_id('db').node_id }}").unwrap(),
            "n1"
        );
        assert_eq!(
            b.render_str("{% raw %}{{range}}{% endraw %}").unwrap(),
            "{{range}}"
        );
        assert_eq!(b.render_str("{{'{{'}}x{{'}}'}}").unwrap(), "{{x}}");
        assert_eq!(b.render_str("a\n").unwrap(), "a\n");
    }

    #[test]
    fn strict_undefined_names_the_variable() {
        let r = Renderer::new(Options::default());
        let e = r
            .bind(&ns())
            .render_str("x {{ variables.nope }} y")
            .unwrap_err();
        assert_eq!(e.kind, TemplateErrorKind::Undefined);
        assert_eq!(e.message, "undefined name `variables.nope`");
        assert!(e.hint.unwrap().contains("--jinja-undefined=lenient"));
        let e = r.bind(&ns()).render_str("{{ getip(master) }}").unwrap_err();
        assert!(e.message.contains("master"), "{e}");
    }

    #[test]
    fn lenient_renders_empty_like_occopus() {
        let r = Renderer::new(Options {
            undefined: Undefined::Lenient,
            allow_cmd: false,
        });
        let b = r.bind(&ns());
        assert_eq!(b.render_str("x{{ variables.nope }}y").unwrap(), "xy");
        // Occopus's accidental "any node" lookup for an undefined name.
        assert_eq!(b.render_str("{{ getip(master) }}").unwrap(), "10.0.0.1");
    }

    #[test]
    fn function_errors_explain() {
        let r = Renderer::new(Options::default());
        let b = r.bind(&ns());
        let e = b.render_str("{{ getip('empty') }}").unwrap_err();
        assert!(e.message.contains("has no instance yet"), "{e}");
        let e = b.render_str("{{ getip('nosuch') }}").unwrap_err();
        assert!(e.message.contains("no node named `nosuch`"), "{e}");
        let e = b.render_str("{{ cmd('echo hi') }}").unwrap_err();
        assert!(e.message.contains("cmd() is disabled"), "{e}");
        let r = Renderer::new(Options {
            allow_cmd: true,
            ..Options::default()
        });
        assert_eq!(
            r.bind(&ns()).render_str("{{ cmd('echo hi') }}").unwrap(),
            "hi\n"
        );
    }

    #[test]
    fn syntax_errors_have_lines() {
        let r = Renderer::new(Options::default());
        let e = r.check_syntax("a\nb {{ oops(").unwrap_err();
        assert_eq!(e.kind, TemplateErrorKind::Syntax);
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn referenced_names_for_validation() {
        let r = Renderer::new(Options::default());
        let names = r
            .referenced_names(
                "{{ variables.a }} {{ getip('x') }} {% for i in variables.items %}{{ i.n }}{% endfor %}",
            )
            .unwrap();
        assert!(names.contains("variables.a"), "{names:?}");
        assert!(names.contains("variables.items"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("getip") || n.starts_with("i."))
        );
    }

    #[test]
    fn render_value_walks_sections() {
        let r = Renderer::new(Options::default());
        let lookup = Arc::new(NoInstances {
            names: vec!["a".into()],
        });
        let ns = Namespace::new(lookup).with("infra_id", "abcdef");
        let v = r
            .bind(&ns)
            .render_value(
                &json!({"server_name": "j-{{cut(infra_id,0,4)}}", "n": 3, "l": ["{{infra_id}}"]}),
            )
            .unwrap();
        assert_eq!(v, json!({"server_name": "j-abcd", "n": 3, "l": ["abcdef"]}));
    }
}
