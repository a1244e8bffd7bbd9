//! `hello`: the minimal copy-me resource handler. It "creates" nothing real: the instance
//! is a greeting recorded in the instance data, ready at once, reachable at `127.0.0.1`.
//! Copy this crate, rename it, and replace the bodies with calls to your backend.
//!
//! Build: `cargo build --profile plugin --target wasm32-wasip2 -p plugin-hello`, then drop
//! `target/wasm32-wasip2/plugin/plugin_hello.wasm` into a `--plugin-dir`.

use occopus_sdk::prelude::*;
use serde::Deserialize;

/// The `resource` section of type `hello`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    /// Always `hello` (the host routes on it).
    #[serde(rename = "type")]
    _type: String,
    /// Who to greet; defaults to the node name.
    #[serde(default)]
    greeting: Option<String>,
}

/// The plugin. Built with `Default` for every call: keep no state in it.
#[derive(Default)]
pub struct Hello;

impl ResourceHandler for Hello {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("hello").handles(
            "hello",
            json!({
                "type": "object",
                "properties": {
                    "type": {"const": "hello"},
                    "greeting": {"type": "string", "description": "Who to greet."}
                },
                "required": ["type"],
                "additionalProperties": false
            }),
        )
    }

    fn create(&self, req: &CreateRequest) -> Result<Value> {
        let section: Section = req.section()?;
        let who = section
            .greeting
            .unwrap_or_else(|| req.node.node_name.clone());
        occopus_sdk::log::info(format!("hello, {who}"));
        // The node id is the idempotency key: creating twice yields the same instance.
        Ok(json!({"id": req.node.node_id, "greeting": format!("hello, {who}")}))
    }

    fn state(&self, _inst: &InstanceRef) -> Result<ResourceState> {
        Ok(ResourceState::ready())
    }

    fn addresses(&self, _inst: &InstanceRef) -> Result<Addresses> {
        Ok(Addresses::single("127.0.0.1"))
    }

    fn destroy(&self, _inst: &InstanceRef) -> Result<()> {
        Ok(())
    }
}

occopus_sdk::export_resource_handler!(Hello);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(resource: Value) -> CreateRequest {
        CreateRequest {
            node: NodeContext {
                node_name: "web".into(),
                node_id: "n-1".into(),
                ..NodeContext::default()
            },
            type_name: "hello".into(),
            resource,
            context: None,
            attributes: Value::Null,
            credentials: None,
        }
    }

    #[test]
    fn greets_the_node_by_default_and_is_idempotent() {
        let req = request(json!({"type": "hello"}));
        let first = Hello.create(&req).unwrap();
        assert_eq!(first, json!({"id": "n-1", "greeting": "hello, web"}));
        assert_eq!(Hello.create(&req).unwrap(), first);
    }

    #[test]
    fn a_typo_is_reported_at_its_field() {
        let err = Hello
            .create(&request(json!({"type": "hello", "greting": "x"})))
            .unwrap_err();
        assert!(err.to_string().contains("greting"), "{err}");
    }
}
