//! `dummy`: Occopus's default config manager, used when a node definition has no
//! `config_management` section. Every operation is a no-op; a node is ready as soon as
//! its resource is; attributes resolve to `{}`; any attribute asked for is the string
//! `"dummy attribute"`, as in Occopus 1.10. It makes no host calls.

use occopus_sdk::prelude::*;

/// The `dummy` config manager.
#[derive(Default)]
pub struct Dummy;

impl ConfigManager for Dummy {
    fn metadata(&self) -> Metadata {
        occopus_sdk::metadata!("dummy").handles(
            "dummy",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "dummy config management",
                "description": "No configuration management: every operation is a no-op.",
                "type": "object",
                "properties": {"type": {"const": "dummy"}},
                "required": ["type"],
                "additionalProperties": false
            }),
        )
    }
    fn create_infrastructure(&self, _req: &InfraRequest) -> Result<()> {
        Ok(())
    }
    fn drop_infrastructure(&self, _req: &InfraRequest) -> Result<()> {
        Ok(())
    }
    fn infrastructure_exists(&self, _req: &InfraRequest) -> Result<bool> {
        Ok(true)
    }
    fn register_node(&self, _req: &NodeRequest) -> Result<()> {
        Ok(())
    }
    fn drop_node(&self, _req: &NodeRequest) -> Result<()> {
        Ok(())
    }
    fn node_state(&self, _req: &NodeRequest) -> Result<NodeStatus> {
        Ok(NodeStatus::Ready)
    }
    fn node_attribute(&self, _req: &NodeRequest, _attribute: &str) -> Result<Option<Value>> {
        Ok(Some(json!("dummy attribute")))
    }
    fn resolve_attributes(&self, _req: &NodeRequest) -> Result<Value> {
        Ok(json!({}))
    }
}

occopus_sdk::export_config_manager!(Dummy);

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeRequest {
        NodeRequest {
            node: NodeContext::default(),
            type_name: "dummy".into(),
            section: json!({"type": "dummy"}),
            credentials: None,
            attributes: Value::Null,
            addresses: Addresses::none(),
        }
    }

    #[test]
    fn behaves_like_occopus_dummy() {
        let d = Dummy;
        assert_eq!(d.node_state(&node()).unwrap(), NodeStatus::Ready);
        assert_eq!(d.resolve_attributes(&node()).unwrap(), json!({}));
        assert_eq!(
            d.node_attribute(&node(), "x").unwrap(),
            Some(json!("dummy attribute"))
        );
        let infra = InfraRequest {
            infra_id: "i".into(),
            type_name: "dummy".into(),
            section: json!({"type": "dummy"}),
            credentials: None,
        };
        assert!(d.infrastructure_exists(&infra).unwrap());
        let m = d.metadata();
        assert_eq!(m.name, "dummy");
        assert_eq!(m.types.len(), 1);
        assert_eq!(m.types[0].name, "dummy");
        assert!(m.capabilities.is_empty());
    }
}
