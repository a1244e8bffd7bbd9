//! Export adapters: implement the generated WIT `Guest` traits on top of the SDK's
//! idiomatic traits, converting JSON strings to values, WIT records to SDK types, and
//! errors back. The `export_*!` macros name these adapters; plugin authors never use them
//! directly.

use crate::bindings::config_manager::exports::occopus::plugin::config_manager as cm;
use crate::bindings::health_checker::exports::occopus::plugin::health_checker as hc;
use crate::bindings::host::occopus::plugin::types as wit;
use crate::bindings::resource_handler::exports::occopus::plugin::resource_handler as rh;
use crate::kinds::{ConfigManager, HealthChecker, ResourceHandler};
use crate::request::{
    CreateRequest, Credentials, HealthRequest, InfraRequest, InstanceRef, Json, NodeRequest,
    parse_json,
};
use crate::types::{HealthStatus, NodeStatus};
use std::marker::PhantomData;

type WitResult<T> = Result<T, wit::PluginError>;

fn credentials(c: Option<String>) -> crate::Result<Option<Credentials>> {
    c.map(|text| parse_json("credentials", &text).map(Credentials::new))
        .transpose()
}

fn to_json(what: &str, value: &serde_json::Value) -> crate::Result<String> {
    serde_json::to_string(value)
        .map_err(|e| crate::PluginError::internal(format!("cannot serialise {what}: {e}")))
}

/// On the host's warm-up call (`validate(type, null)`, made on a fresh instance), do the
/// start-up work that a first call would otherwise do at its first host call: seed std's
/// hash maps (`RandomState` reads `wasi:random`; every JSON object the SDK parses is one).
/// A create the host starts ahead of its turn runs until its first host call, so this
/// lets it run up to its first real effect.
fn warm_up(section: &str) {
    if section == "null" {
        let _ = std::collections::hash_map::RandomState::new();
    }
}

/// Adapter exporting a [`ResourceHandler`] as the WIT `resource-handler` interface.
pub struct ResourceHandlerExport<P>(PhantomData<P>);

fn create_request(r: rh::CreateRequest) -> crate::Result<CreateRequest> {
    Ok(CreateRequest {
        node: r.node.into(),
        resource: parse_json("the resource section", &r.resource)?,
        attributes: parse_json("attributes", &r.attributes)?,
        credentials: credentials(r.credentials)?,
        type_name: r.type_name,
        context: r.context,
    })
}

fn instance_ref(r: rh::InstanceRef) -> crate::Result<InstanceRef> {
    Ok(InstanceRef {
        node: r.node.into(),
        resource: Json::from_text("the resource section", r.resource),
        credentials: credentials(r.credentials)?,
        instance: Json::from_text("instance data", r.instance),
        type_name: r.type_name,
    })
}

impl<P: ResourceHandler + Default + 'static> rh::Guest for ResourceHandlerExport<P> {
    fn metadata() -> wit::PluginMetadata {
        P::default().metadata().into()
    }
    fn validate(type_name: String, section: String) -> WitResult<()> {
        warm_up(&section);
        let section = parse_json("the section", &section)?;
        Ok(P::default().validate(&type_name, &section)?)
    }
    fn create(req: rh::CreateRequest) -> WitResult<String> {
        let req = create_request(req)?;
        let instance = P::default().create(&req)?;
        Ok(to_json("instance data", &instance)?)
    }
    fn find(req: rh::CreateRequest) -> WitResult<Option<String>> {
        let req = create_request(req)?;
        match P::default().find(&req)? {
            Some(v) => Ok(Some(to_json("instance data", &v)?)),
            None => Ok(None),
        }
    }
    fn state(inst: rh::InstanceRef) -> WitResult<rh::ResourceState> {
        let s = P::default().state(&instance_ref(inst)?)?;
        Ok(rh::ResourceState {
            status: s.status.into(),
            message: s.message,
        })
    }
    fn addresses(inst: rh::InstanceRef) -> WitResult<wit::Addresses> {
        Ok(P::default().addresses(&instance_ref(inst)?)?.into())
    }
    fn destroy(inst: rh::InstanceRef) -> WitResult<()> {
        Ok(P::default().destroy(&instance_ref(inst)?)?)
    }
    fn cost(inst: rh::InstanceRef) -> WitResult<Option<f64>> {
        Ok(P::default().cost(&instance_ref(inst)?)?)
    }
}

/// Adapter exporting a [`HealthChecker`] as the WIT `health-checker` interface.
pub struct HealthCheckerExport<P>(PhantomData<P>);

impl<P: HealthChecker + Default + 'static> hc::Guest for HealthCheckerExport<P> {
    fn metadata() -> wit::PluginMetadata {
        P::default().metadata().into()
    }
    fn validate(type_name: String, section: String) -> WitResult<()> {
        warm_up(&section);
        let section = parse_json("the section", &section)?;
        Ok(P::default().validate(&type_name, &section)?)
    }
    fn check(req: hc::HealthRequest) -> WitResult<hc::HealthReport> {
        let req = HealthRequest {
            node: req.node.into(),
            section: parse_json("the health_check section", &req.section)?,
            addresses: req.addresses.into(),
            type_name: req.type_name,
        };
        let report = P::default().check(&req)?;
        Ok(hc::HealthReport {
            status: match report.status {
                HealthStatus::Ready => hc::HealthStatus::Ready,
                HealthStatus::Pending => hc::HealthStatus::Pending,
                HealthStatus::Failed => hc::HealthStatus::Failed,
            },
            checks: report
                .checks
                .into_iter()
                .map(|c| hc::CheckOutcome {
                    name: c.name,
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
        })
    }
}

/// Adapter exporting a [`ConfigManager`] as the WIT `config-manager` interface.
pub struct ConfigManagerExport<P>(PhantomData<P>);

fn infra_request(r: cm::InfraRequest) -> crate::Result<InfraRequest> {
    Ok(InfraRequest {
        section: parse_json("the config_management section", &r.section)?,
        credentials: credentials(r.credentials)?,
        infra_id: r.infra_id,
        type_name: r.type_name,
    })
}

fn node_request(r: cm::NodeRequest) -> crate::Result<NodeRequest> {
    Ok(NodeRequest {
        node: r.node.into(),
        section: parse_json("the config_management section", &r.section)?,
        credentials: credentials(r.credentials)?,
        attributes: parse_json("attributes", &r.attributes)?,
        addresses: r.addresses.into(),
        type_name: r.type_name,
    })
}

impl<P: ConfigManager + Default + 'static> cm::Guest for ConfigManagerExport<P> {
    fn metadata() -> wit::PluginMetadata {
        P::default().metadata().into()
    }
    fn validate(type_name: String, section: String) -> WitResult<()> {
        warm_up(&section);
        let section = parse_json("the section", &section)?;
        Ok(P::default().validate(&type_name, &section)?)
    }
    fn create_infrastructure(req: cm::InfraRequest) -> WitResult<()> {
        Ok(P::default().create_infrastructure(&infra_request(req)?)?)
    }
    fn drop_infrastructure(req: cm::InfraRequest) -> WitResult<()> {
        Ok(P::default().drop_infrastructure(&infra_request(req)?)?)
    }
    fn infrastructure_exists(req: cm::InfraRequest) -> WitResult<bool> {
        Ok(P::default().infrastructure_exists(&infra_request(req)?)?)
    }
    fn register_node(req: cm::NodeRequest) -> WitResult<()> {
        Ok(P::default().register_node(&node_request(req)?)?)
    }
    fn drop_node(req: cm::NodeRequest) -> WitResult<()> {
        Ok(P::default().drop_node(&node_request(req)?)?)
    }
    fn node_state(req: cm::NodeRequest) -> WitResult<wit::NodeStatus> {
        let s: NodeStatus = P::default().node_state(&node_request(req)?)?;
        Ok(s.into())
    }
    fn node_attribute(req: cm::NodeRequest, attribute: String) -> WitResult<Option<String>> {
        match P::default().node_attribute(&node_request(req)?, &attribute)? {
            Some(v) => Ok(Some(to_json("the attribute", &v)?)),
            None => Ok(None),
        }
    }
    fn resolve_attributes(req: cm::NodeRequest) -> WitResult<String> {
        let v = P::default().resolve_attributes(&node_request(req)?)?;
        Ok(to_json("resolved attributes", &v)?)
    }
}

/// Shared body of the three export macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __occopus_export {
    ($plugin:ty, $trait:ident, $adapter:ident, $world:ident, $world_macro:ident) => {
        // Checked on every target, so native `cargo test` catches a missing impl.
        const _: fn() = || {
            fn exportable<P: $crate::$trait + ::core::default::Default + 'static>() {}
            exportable::<$plugin>();
        };
        // Export names such as `occopus:plugin/...#create` only link on wasm.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        type __OccopusExport = $crate::__private::$adapter<$plugin>;
        #[cfg(target_arch = "wasm32")]
        $crate::__private::bindings::$world::$world_macro!(
            __OccopusExport with_types_in $crate::__private::bindings::$world
        );
    };
}

/// Export a [`ResourceHandler`](crate::ResourceHandler) implementation (which must also
/// implement `Default`) as this component's `resource-handler`. Invoke it once, at the
/// crate root of a `cdylib` crate.
#[macro_export]
macro_rules! export_resource_handler {
    ($plugin:ty) => {
        $crate::__occopus_export!(
            $plugin,
            ResourceHandler,
            ResourceHandlerExport,
            resource_handler,
            __occopus_export_resource_handler_world
        );
    };
}

/// Export a [`HealthChecker`](crate::HealthChecker) implementation (which must also
/// implement `Default`) as this component's `health-checker`.
#[macro_export]
macro_rules! export_health_checker {
    ($plugin:ty) => {
        $crate::__occopus_export!(
            $plugin,
            HealthChecker,
            HealthCheckerExport,
            health_checker,
            __occopus_export_health_checker_world
        );
    };
}

/// Export a [`ConfigManager`](crate::ConfigManager) implementation (which must also
/// implement `Default`) as this component's `config-manager`.
#[macro_export]
macro_rules! export_config_manager {
    ($plugin:ty) => {
        $crate::__occopus_export!(
            $plugin,
            ConfigManager,
            ConfigManagerExport,
            config_manager,
            __occopus_export_config_manager_world
        );
    };
}
