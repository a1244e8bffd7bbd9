//! Rendering of one instance's sections with `occopus_template`, in Occopus's order:
//! `resource` → `config_management` → (the config manager's `resolve_attributes`, merged
//! into the namespace by the caller) → the cloud-init `context_template` → the
//! contextualisation attributes (docker `env`/`command`).
//!
//! Also the [`AddressBook`]: the live view of instance addresses that `getip` and friends
//! read. It sees every instance recorded so far, including those created earlier in the
//! same build.

use occopus_model::{
    Addresses, Contextualisation, InfraId, InstancePhase, InstanceRecord, NodeImpl, NodeSpec,
    ResolvedInfra,
};
use occopus_template::{InstanceView, Lookup, Namespace, Renderer, TemplateError, is_template};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Addresses of the instances of every node, oldest first.
pub(crate) struct AddressBook {
    names: Vec<String>,
    map: RwLock<HashMap<String, Vec<InstanceView>>>,
}

impl AddressBook {
    /// Start from the recorded instances that have been created.
    pub fn new(infra: &ResolvedInfra, recorded: &[InstanceRecord]) -> Self {
        let names: Vec<String> = infra.nodes.iter().map(|n| n.name.to_string()).collect();
        let mut map: HashMap<String, Vec<InstanceView>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for r in recorded {
            let created = matches!(r.phase, InstancePhase::Created | InstancePhase::Ready);
            if let Some(v) = map.get_mut(r.node_name.as_str()).filter(|_| created) {
                v.push(InstanceView {
                    node_id: r.node_id.to_string(),
                    addresses: r.addresses.clone(),
                });
            }
        }
        Self {
            names,
            map: RwLock::new(map),
        }
    }

    /// Record (or update) the addresses of an instance.
    pub fn set(&self, node: &str, node_id: &str, addresses: &Addresses) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get_mut(node) else {
            return;
        };
        match list.iter_mut().find(|v| v.node_id == node_id) {
            Some(v) => v.addresses = addresses.clone(),
            None => list.push(InstanceView {
                node_id: node_id.to_string(),
                addresses: addresses.clone(),
            }),
        }
    }
}

impl Lookup for AddressBook {
    fn instances(&self, name: &str) -> Option<Vec<InstanceView>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(name).cloned()
    }
    fn node_names(&self) -> Vec<String> {
        self.names.clone()
    }
}

/// The template names of one implementation of a node that do not depend on the instance:
/// Occopus's compiled node description plus the raw sections of the implementation.
pub(crate) fn impl_vars(
    infra: &ResolvedInfra,
    infra_id: &InfraId,
    node: &NodeSpec,
    mappings: &[Value],
    imp: &NodeImpl,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(node.name));
    m.insert("type".into(), json!(node.type_name));
    m.insert(
        "scaling".into(),
        json!({"min": node.scaling.min, "max": node.scaling.max}),
    );
    m.insert("filter".into(), Value::Object(node.filter.clone()));
    m.insert("infra_id".into(), json!(infra_id));
    m.insert("infra_name".into(), json!(infra.name));
    m.insert("user_id".into(), json!(infra.user_id));
    m.insert("mappings".into(), Value::Array(mappings.to_vec()));
    m.insert("variables".into(), node.variables.clone());
    m.insert("resource".into(), Value::Object(imp.resource.clone()));
    m.insert(
        "contextualisation".into(),
        serde_json::to_value(&imp.contextualisation).unwrap_or(Value::Null),
    );
    m.insert(
        "config_management".into(),
        imp.config_management
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
    );
    m.insert(
        "health_check".into(),
        Value::Object(imp.health_check.section.clone()),
    );
    m
}

/// The namespace of one instance: its implementation's names plus `node_id`, and the
/// address book.
pub(crate) fn instance_namespace(
    mut vars: Map<String, Value>,
    node_id: &str,
    book: Arc<AddressBook>,
) -> Namespace {
    vars.insert("node_id".into(), Value::from(node_id));
    let mut ns = Namespace::new(book);
    ns.vars = vars;
    ns
}

/// Whether a template may read other instances (so its result can change while a build
/// runs).
pub(crate) fn uses_lookups(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            is_template(s)
                && ["getip", "getprivip", "getipall", "find_node_id"]
                    .iter()
                    .any(|f| s.contains(f))
        }
        Value::Array(a) => a.iter().any(uses_lookups),
        Value::Object(m) => m.values().any(uses_lookups),
        _ => false,
    }
}

/// Whether rendering a contextualisation may read something outside the description:
/// another instance's addresses or id (which may not exist yet), or a command's output.
pub(crate) fn context_reads_outside(c: &Contextualisation) -> bool {
    fn reads(v: &Value) -> bool {
        match v {
            Value::String(s) => {
                is_template(s)
                    && ["getip", "getprivip", "getipall", "find_node_id", "cmd"]
                        .iter()
                        .any(|f| s.contains(f))
            }
            Value::Array(a) => a.iter().any(reads),
            Value::Object(m) => m.values().any(reads),
            _ => false,
        }
    }
    let text = |s: &str| reads(&Value::from(s));
    match c {
        Contextualisation::Cloudinit {
            context_template,
            attributes,
        } => text(context_template) || reads(attributes),
        Contextualisation::Docker {
            env,
            command,
            context_variables,
        } => {
            env.iter().any(|e| text(e))
                || command.as_ref().is_some_and(reads)
                || reads(context_variables)
        }
        Contextualisation::Basic { attributes } => reads(attributes),
    }
}

/// Whether rendering a contextualisation reads any name: with no template in it,
/// [`render_context`] returns it as written whatever the namespace.
pub(crate) fn context_has_templates(c: &Contextualisation) -> bool {
    match c {
        Contextualisation::Cloudinit {
            context_template,
            attributes,
        } => is_template(context_template) || has_templates(attributes),
        Contextualisation::Docker { env, command, .. } => {
            env.iter().any(|e| is_template(e)) || command.as_ref().is_some_and(has_templates)
        }
        Contextualisation::Basic { attributes } => has_templates(attributes),
    }
}

/// Whether any string inside `v` is a template.
pub(crate) fn has_templates(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(a) => a.iter().any(has_templates),
        Value::Object(m) => m.values().any(has_templates),
        _ => false,
    }
}

fn explain(what: &str, e: TemplateError) -> String {
    // `Display` of a TemplateError already names the template line.
    match &e.hint {
        Some(h) => format!("cannot render {what}: {e} (hint: {h})"),
        None => format!("cannot render {what}: {e}"),
    }
}

/// Render every string of a value (a section, an attribute map).
pub(crate) fn render_value(
    r: &Renderer,
    ns: &Namespace,
    what: &str,
    v: &Value,
) -> Result<Value, String> {
    if !has_templates(v) {
        return Ok(v.clone());
    }
    r.bind(ns).render_value(v).map_err(|e| explain(what, e))
}

/// Render a section (a JSON object).
pub(crate) fn render_section(
    r: &Renderer,
    ns: &Namespace,
    what: &str,
    section: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let v = Value::Object(section.clone());
    match render_value(r, ns, what, &v)? {
        Value::Object(m) => Ok(m),
        _ => Err(format!("cannot render {what}: it is not a mapping")),
    }
}

/// Rendered contextualisation: user data (cloud-init) and attributes (for config managers,
/// or docker's `{"env": [...], "command": ...}`).
pub(crate) struct Contextualised {
    pub context: Option<String>,
    pub attributes: Value,
}

pub(crate) fn render_context(
    r: &Renderer,
    ns: &mut Namespace,
    c: &Contextualisation,
) -> Result<Contextualised, String> {
    match c {
        Contextualisation::Cloudinit {
            context_template,
            attributes,
        } => {
            let context = if is_template(context_template) {
                r.bind(ns)
                    .render_str(context_template)
                    .map_err(|e| explain("contextualisation.context_template", e))?
            } else {
                context_template.clone()
            };
            let attributes = render_value(r, ns, "contextualisation.attributes", attributes)?;
            Ok(Contextualised {
                context: Some(context),
                attributes,
            })
        }
        Contextualisation::Docker {
            env,
            command,
            context_variables,
        } => {
            // Occopus's docker resolver sees `context_variables` as a dict and its keys at
            // the top level.
            if let Value::Object(m) = context_variables {
                for (k, v) in m {
                    if !ns.defines(k) {
                        ns.set(k, v.clone());
                    }
                }
            }
            ns.set("context_variables", context_variables.clone());
            let env = render_value(
                r,
                ns,
                "contextualisation.env",
                &Value::Array(env.iter().cloned().map(Value::String).collect()),
            )?;
            let command = match command {
                Some(c) => render_value(r, ns, "contextualisation.command", c)?,
                None => Value::Null,
            };
            Ok(Contextualised {
                context: None,
                attributes: json!({"env": env, "command": command}),
            })
        }
        Contextualisation::Basic { attributes } => Ok(Contextualised {
            context: None,
            attributes: render_value(r, ns, "contextualisation.attributes", attributes)?,
        }),
    }
}

/// Merge a config manager's `resolve_attributes` result into the namespace (top-level
/// keys; Occopus's `puppet` for puppet_solo).
pub(crate) fn merge_attributes(ns: &mut Namespace, extra: Value) {
    if let Value::Object(m) = extra {
        for (k, v) in m {
            ns.set(&k, v);
        }
    }
}

/// The namespace of health-check strings: `ip` (primary address), `node_id`,
/// `variables`, `instance_data`.
pub(crate) fn health_namespace(
    node: &NodeSpec,
    rec: &InstanceRecord,
    book: Arc<AddressBook>,
) -> Namespace {
    Namespace::new(book)
        .with("ip", json!(rec.addresses.primary))
        .with("node_id", rec.node_id.as_str())
        .with("variables", node.variables.clone())
        .with("instance_data", rec.instance.clone().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use occopus_model::{HealthCheckSpec, NodeName, Scaling};
    use occopus_template::Options;

    fn spec() -> (ResolvedInfra, NodeImpl) {
        let imp = NodeImpl {
            index: 0,
            resource: serde_json::from_value(
                json!({"type": "fake", "name": "vm-{{cut(infra_id,0,4)}}-{{ variables.size }}"}),
            )
            .unwrap(),
            contextualisation: Contextualisation::Docker {
                env: vec!["DB={{ getip('db') }}".into(), "PORT={{ port }}".into()],
                command: Some(json!(["run", "{{ node_id }}"])),
                context_variables: json!({"port": 80}),
            },
            config_management: None,
            health_check: HealthCheckSpec::default(),
        };
        let node = |name: &str| NodeSpec {
            name: NodeName::parse(name).unwrap(),
            type_name: "t".into(),
            scaling: Scaling::default(),
            filter: Map::new(),
            variables: json!({"size": "small"}),
            implementations: vec![imp.clone()],
        };
        let infra = ResolvedInfra {
            name: "demo".into(),
            user_id: None,
            variables: json!({}),
            nodes: vec![node("db"), node("web")],
            edges: Vec::new(),
        };
        (infra, imp)
    }

    #[test]
    fn sections_render_in_order_with_live_addresses() {
        let (infra, imp) = spec();
        let id = InfraId::new("abcdef12");
        let book = Arc::new(AddressBook::new(&infra, &[]));
        let vars = impl_vars(&infra, &id, &infra.nodes[1], &[], &imp);
        let r = Renderer::new(Options::default());
        let mut ns = instance_namespace(vars, "n-1", book.clone());
        let res = render_section(&r, &ns, "resource", &imp.resource).unwrap();
        assert_eq!(res["name"], "vm-abcd-small");
        // No instance of `db` yet: a clear error.
        let e = render_context(&r, &mut ns, &imp.contextualisation)
            .err()
            .unwrap();
        assert!(e.contains("has no instance yet"), "{e}");
        book.set(
            "db",
            "d-1",
            &Addresses {
                primary: Some("10.1.1.1".into()),
                ..Addresses::default()
            },
        );
        let c = render_context(&r, &mut ns, &imp.contextualisation).unwrap();
        assert_eq!(
            c.attributes,
            json!({"env": ["DB=10.1.1.1", "PORT=80"], "command": ["run", "n-1"]})
        );
        assert_eq!(c.context, None);
    }

    #[test]
    fn only_templated_contextualisations_need_names() {
        let plain = Contextualisation::Cloudinit {
            context_template: "#cloud-config\nruncmd: [true]".into(),
            attributes: json!({"a": 1}),
        };
        assert!(!context_has_templates(&plain));
        let templated = Contextualisation::Cloudinit {
            context_template: "db={{ getip('db') }}".into(),
            attributes: Value::Null,
        };
        assert!(context_has_templates(&templated));
        let docker = |env: &str, command: Option<Value>| Contextualisation::Docker {
            env: vec![env.into()],
            command,
            context_variables: json!({"x": 1}),
        };
        assert!(!context_has_templates(&docker("A=1", None)));
        assert!(context_has_templates(&docker("A={{ x }}", None)));
        assert!(context_has_templates(&docker(
            "A=1",
            Some(json!(["run", "{{ node_id }}"]))
        )));
        assert!(!context_has_templates(&Contextualisation::default()));
    }
}
