//! The engine's plugin traits ([`ResourceHandler`], [`HealthChecker`], [`ConfigManager`])
//! implemented by a loaded WebAssembly plugin.
//!
//! Owns: converting requests to WIT records (credentials exposed only here, into the
//! guest call), building each call's reachability policy from its section, credentials and
//! (health checks) node addresses, the host-side schema check before `validate`/`create`,
//! bounding what the guest returns, and converting results back.
//!
//! Must not: log requests (they carry credentials).

use crate::bindings::config_manager::exports::occopus::plugin::config_manager as wcm;
use crate::bindings::health_checker::exports::occopus::plugin::health_checker as whc;
use crate::bindings::resource_handler::exports::occopus::plugin::resource_handler as wrh;
use crate::convert::{
    addresses_from_wit, addresses_to_wit, error_from_wit, node_to_wit, status_from_wit,
};
use crate::grants::CallPolicy;
use crate::loader::LoadedPlugin;
use crate::pool::{Staged, bound};
use async_trait::async_trait;
use occopus_model::instance::Addresses;
use occopus_model::plugin::{
    CheckOutcome, CmInfraRequest, CmNodeRequest, ConfigManager, CreateRequest, HealthChecker,
    HealthReport, HealthRequest, HealthStatus, InstanceRef, PluginError, Release, ResourceHandler,
    ResourceState,
};
use occopus_model::secret::Secret;
use occopus_model::status::NodeStatus;
use serde_json::Value;

/// Most check outcomes accepted in one health report.
const MAX_CHECKS: usize = 1000;

type Wit<T> = Result<T, crate::bindings::host_api::occopus::plugin::types::PluginError>;

fn creds(c: &Option<Secret<Value>>) -> Option<String> {
    c.as_ref().map(|s| s.expose().to_string())
}

/// Size of a guest error, for bounding.
fn err_size(e: &crate::bindings::host_api::occopus::plugin::types::PluginError) -> usize {
    use crate::bindings::host_api::occopus::plugin::types::PluginError as E;
    match e {
        E::InvalidConfig(f) => f.path.len() + f.message.len(),
        E::Transient(r) => r.message.len(),
        E::Denied(m) | E::NotFound(m) | E::Conflict(m) | E::Timeout(m) | E::Internal(m) => m.len(),
    }
}

fn result_size<T>(r: &Wit<T>, ok: impl FnOnce(&T) -> usize) -> usize {
    match r {
        Ok(v) => ok(v),
        Err(e) => err_size(e),
    }
}

fn parse_json(text: &str, plugin: &str, operation: &str) -> Result<Value, PluginError> {
    serde_json::from_str(text).map_err(|e| {
        PluginError::Internal(format!(
            "plugin `{plugin}` returned invalid JSON from `{operation}`: {e}"
        ))
    })
}

impl LoadedPlugin {
    fn max_output(&self) -> usize {
        self.pool.shared().runtime.limits.max_output_bytes
    }

    fn name(&self) -> &str {
        &self.info.name
    }

    fn policy(&self) -> CallPolicy {
        CallPolicy::new(self.pool.shared().grants.clone())
    }

    /// The schema check the engine's `validate`/`create` get for free.
    fn schema_check(&self, type_name: &str, section: &Value) -> Result<(), PluginError> {
        let Some(schema) = self.schemas.get(type_name) else {
            return Err(PluginError::InvalidConfig {
                path: String::new(),
                message: format!(
                    "plugin `{}` does not handle type `{type_name}` (it handles: {})",
                    self.name(),
                    self.schemas.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let errors = schema.check(section, false);
        match errors.first() {
            None => Ok(()),
            Some(first) => {
                let more = match errors.len() - 1 {
                    0 => String::new(),
                    1 => " (and 1 more problem)".to_string(),
                    n => format!(" (and {n} more problems)"),
                };
                Err(PluginError::InvalidConfig {
                    path: first.path.clone(),
                    message: format!("{}{more}", first.message),
                })
            }
        }
    }

    fn map_err(
        &self,
        e: crate::bindings::host_api::occopus::plugin::types::PluginError,
    ) -> PluginError {
        error_from_wit(e, self.max_output())
    }

    fn instance_ref(inst: &InstanceRef) -> wrh::InstanceRef {
        wrh::InstanceRef {
            node: node_to_wit(&inst.node),
            type_name: inst.type_name.clone(),
            resource: inst.resource.to_string(),
            credentials: creds(&inst.credentials),
            instance: inst.instance.to_string(),
        }
    }

    fn instance_policy(&self, inst: &InstanceRef) -> CallPolicy {
        let mut p = self.policy().with_endpoints_from(&inst.resource);
        if let Some(c) = &inst.credentials {
            p = p.with_endpoints_from(c.expose());
        }
        p
    }

    fn create_request(req: &CreateRequest) -> wrh::CreateRequest {
        wrh::CreateRequest {
            node: node_to_wit(&req.node),
            type_name: req.type_name.clone(),
            resource: req.resource.to_string(),
            context: req.context.clone(),
            attributes: req.attributes.to_string(),
            credentials: creds(&req.credentials),
        }
    }

    fn create_policy(&self, req: &CreateRequest) -> CallPolicy {
        let mut p = self.policy().with_endpoints_from(&req.resource);
        if let Some(c) = &req.credentials {
            p = p.with_endpoints_from(c.expose());
        }
        p
    }

    async fn call_validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError> {
        self.schema_check(type_name, section)?;
        let t = type_name.to_string();
        let sec = section.to_string();
        let max = self.max_output();
        let policy = self.policy().with_endpoints_from(section);
        let r: Wit<()> = self
            .pool
            .call("validate", policy, None, move |s, b| {
                Box::pin(async move {
                    let r = b.call_validate(s, &t, &sec).await?;
                    bound(result_size(&r, |_| 0), max, "validate")?;
                    Ok(r)
                })
            })
            .await?;
        r.map_err(|e| self.map_err(e))
    }
}

#[async_trait]
impl ResourceHandler for LoadedPlugin {
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError> {
        self.call_validate(type_name, section).await
    }

    async fn create(&self, req: &CreateRequest) -> Result<Value, PluginError> {
        self.schema_check(&req.type_name, &req.resource)?;
        let w = Self::create_request(req);
        let max = self.max_output();
        let r: Wit<String> = self
            .pool
            .call(
                "create",
                self.create_policy(req),
                Some(req.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_create(s, &w).await?;
                        bound(result_size(&r, String::len), max, "create")?;
                        Ok(r)
                    })
                },
            )
            .await?;
        parse_json(&r.map_err(|e| self.map_err(e))?, self.name(), "create")
    }

    /// The guest runs until its first host call, which waits for `turn` (the pool's
    /// staged call); if it cannot run ahead, an ordinary `create` at the turn.
    async fn create_staged(
        &self,
        req: &CreateRequest,
        turn: &Release,
    ) -> Result<Value, PluginError> {
        if let Err(e) = self.schema_check(&req.type_name, &req.resource) {
            turn.wait().await;
            return Err(e);
        }
        let w = Self::create_request(req);
        let max = self.max_output();
        let staged = self
            .pool
            .call_staged(
                "create",
                self.create_policy(req),
                Some(req.node.clone()),
                &req.type_name,
                turn,
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_create(s, &w).await?;
                        bound(result_size(&r, String::len), max, "create")?;
                        Ok(r)
                    })
                },
            )
            .await;
        let r: Wit<String> = match staged {
            Staged::Done(r) => r?,
            Staged::NotStaged => {
                turn.wait().await;
                return self.create(req).await;
            }
        };
        parse_json(&r.map_err(|e| self.map_err(e))?, self.name(), "create")
    }

    async fn find(&self, req: &CreateRequest) -> Result<Option<Value>, PluginError> {
        let w = Self::create_request(req);
        let max = self.max_output();
        let r: Wit<Option<String>> = self
            .pool
            .call(
                "find",
                self.create_policy(req),
                Some(req.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_find(s, &w).await?;
                        bound(
                            result_size(&r, |o| o.as_ref().map_or(0, String::len)),
                            max,
                            "find",
                        )?;
                        Ok(r)
                    })
                },
            )
            .await?;
        match r.map_err(|e| self.map_err(e))? {
            Some(j) => parse_json(&j, self.name(), "find").map(Some),
            None => Ok(None),
        }
    }

    async fn state(&self, inst: &InstanceRef) -> Result<ResourceState, PluginError> {
        let w = Self::instance_ref(inst);
        let max = self.max_output();
        let (r, poll_after_ms): (Wit<wrh::ResourceState>, Option<u64>) = self
            .pool
            .call(
                "state",
                self.instance_policy(inst),
                Some(inst.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_state(&mut *s, &w).await?;
                        bound(
                            result_size(&r, |st| st.message.as_ref().map_or(0, String::len)),
                            max,
                            "state",
                        )?;
                        Ok((r, s.data().call.poll_after_ms))
                    })
                },
            )
            .await?;
        let st = r.map_err(|e| self.map_err(e))?;
        Ok(ResourceState {
            status: status_from_wit(st.status),
            message: st.message,
            poll_after_ms,
        })
    }

    async fn addresses(&self, inst: &InstanceRef) -> Result<Addresses, PluginError> {
        let w = Self::instance_ref(inst);
        let max = self.max_output();
        let r = self
            .pool
            .call(
                "addresses",
                self.instance_policy(inst),
                Some(inst.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_addresses(s, &w).await?;
                        let size =
                            |a: &crate::bindings::host_api::occopus::plugin::types::Addresses| {
                                a.primary.as_ref().map_or(0, String::len)
                                    + a.private.as_ref().map_or(0, String::len)
                                    + a.all.iter().map(String::len).sum::<usize>()
                            };
                        bound(result_size(&r, size), max, "addresses")?;
                        Ok(r)
                    })
                },
            )
            .await?;
        Ok(addresses_from_wit(r.map_err(|e| self.map_err(e))?))
    }

    async fn destroy(&self, inst: &InstanceRef) -> Result<(), PluginError> {
        let w = Self::instance_ref(inst);
        let max = self.max_output();
        let r: Wit<()> = self
            .pool
            .call(
                "destroy",
                self.instance_policy(inst),
                Some(inst.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_destroy(s, &w).await?;
                        bound(result_size(&r, |_| 0), max, "destroy")?;
                        Ok(r)
                    })
                },
            )
            .await?;
        r.map_err(|e| self.map_err(e))
    }

    async fn cost(&self, inst: &InstanceRef) -> Result<Option<f64>, PluginError> {
        let w = Self::instance_ref(inst);
        let max = self.max_output();
        let r: Wit<Option<f64>> = self
            .pool
            .call(
                "cost",
                self.instance_policy(inst),
                Some(inst.node.clone()),
                move |s, b| {
                    Box::pin(async move {
                        let r = b.resource_handler()?.call_cost(s, &w).await?;
                        bound(result_size(&r, |_| 0), max, "cost")?;
                        Ok(r)
                    })
                },
            )
            .await?;
        r.map_err(|e| self.map_err(e))
    }
}

#[async_trait]
impl HealthChecker for LoadedPlugin {
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError> {
        self.call_validate(type_name, section).await
    }

    async fn check(&self, req: &HealthRequest) -> Result<HealthReport, PluginError> {
        let a = &req.addresses;
        let hosts = a
            .primary
            .iter()
            .chain(a.private.iter())
            .chain(a.all.iter())
            .map(String::as_str);
        let policy = self
            .policy()
            .with_endpoints_from(&req.section)
            .with_node_hosts(hosts);
        let w = whc::HealthRequest {
            node: node_to_wit(&req.node),
            type_name: req.type_name.clone(),
            section: req.section.to_string(),
            addresses: addresses_to_wit(&req.addresses),
        };
        let max = self.max_output();
        let r: Wit<whc::HealthReport> = self
            .pool
            .call("check", policy, Some(req.node.clone()), move |s, b| {
                Box::pin(async move {
                    let r = b.health_checker()?.call_check(s, &w).await?;
                    let size = |h: &whc::HealthReport| {
                        h.checks
                            .iter()
                            .map(|c| c.name.len() + c.detail.len() + 1)
                            .sum::<usize>()
                    };
                    bound(result_size(&r, size), max, "check")?;
                    if let Ok(h) = &r
                        && h.checks.len() > MAX_CHECKS
                    {
                        bound(h.checks.len(), MAX_CHECKS, "check (number of outcomes)")?;
                    }
                    Ok(r)
                })
            })
            .await?;
        let h = r.map_err(|e| self.map_err(e))?;
        Ok(HealthReport {
            status: match h.status {
                whc::HealthStatus::Ready => HealthStatus::Ready,
                whc::HealthStatus::Pending => HealthStatus::Pending,
                whc::HealthStatus::Failed => HealthStatus::Failed,
            },
            checks: h
                .checks
                .into_iter()
                .map(|c| CheckOutcome {
                    name: c.name,
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
        })
    }
}

impl LoadedPlugin {
    fn infra_request(req: &CmInfraRequest) -> wcm::InfraRequest {
        wcm::InfraRequest {
            infra_id: req.infra_id.to_string(),
            type_name: req.type_name.clone(),
            section: req.section.to_string(),
            credentials: creds(&req.credentials),
        }
    }

    fn infra_policy(&self, req: &CmInfraRequest) -> CallPolicy {
        let mut p = self.policy().with_endpoints_from(&req.section);
        if let Some(c) = &req.credentials {
            p = p.with_endpoints_from(c.expose());
        }
        p
    }

    fn node_request(req: &CmNodeRequest) -> wcm::NodeRequest {
        wcm::NodeRequest {
            node: node_to_wit(&req.node),
            type_name: req.type_name.clone(),
            section: req.section.to_string(),
            credentials: creds(&req.credentials),
            attributes: req.attributes.to_string(),
            addresses: addresses_to_wit(&req.addresses),
        }
    }

    fn node_policy(&self, req: &CmNodeRequest) -> CallPolicy {
        let mut p = self.policy().with_endpoints_from(&req.section);
        if let Some(c) = &req.credentials {
            p = p.with_endpoints_from(c.expose());
        }
        p
    }
}

/// One config-manager call: `$op` is the WIT name, `$call` the generated method,
/// `$size` measures the ok value.
macro_rules! cm_call {
    ($self:ident, $op:literal, $policy:expr, $node:expr, |$s:ident, $g:ident| $call:expr, $size:expr) => {{
        let max = $self.max_output();
        let r = $self
            .pool
            .call($op, $policy, $node, move |$s, b| {
                Box::pin(async move {
                    let $g = b.config_manager()?;
                    let r = $call.await?;
                    bound(result_size(&r, $size), max, $op)?;
                    Ok(r)
                })
            })
            .await?;
        r.map_err(|e| $self.map_err(e))
    }};
}

#[async_trait]
impl ConfigManager for LoadedPlugin {
    async fn validate(&self, type_name: &str, section: &Value) -> Result<(), PluginError> {
        self.call_validate(type_name, section).await
    }

    async fn create_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError> {
        let w = Self::infra_request(req);
        cm_call!(
            self,
            "create-infrastructure",
            self.infra_policy(req),
            None,
            |s, g| g.call_create_infrastructure(s, &w),
            |_| 0
        )
    }

    async fn drop_infrastructure(&self, req: &CmInfraRequest) -> Result<(), PluginError> {
        let w = Self::infra_request(req);
        cm_call!(
            self,
            "drop-infrastructure",
            self.infra_policy(req),
            None,
            |s, g| g.call_drop_infrastructure(s, &w),
            |_| 0
        )
    }

    async fn infrastructure_exists(&self, req: &CmInfraRequest) -> Result<bool, PluginError> {
        let w = Self::infra_request(req);
        cm_call!(
            self,
            "infrastructure-exists",
            self.infra_policy(req),
            None,
            |s, g| g.call_infrastructure_exists(s, &w),
            |_| 0
        )
    }

    async fn register_node(&self, req: &CmNodeRequest) -> Result<(), PluginError> {
        let w = Self::node_request(req);
        cm_call!(
            self,
            "register-node",
            self.node_policy(req),
            Some(req.node.clone()),
            |s, g| g.call_register_node(s, &w),
            |_| 0
        )
    }

    async fn drop_node(&self, req: &CmNodeRequest) -> Result<(), PluginError> {
        let w = Self::node_request(req);
        cm_call!(
            self,
            "drop-node",
            self.node_policy(req),
            Some(req.node.clone()),
            |s, g| g.call_drop_node(s, &w),
            |_| 0
        )
    }

    async fn node_state(&self, req: &CmNodeRequest) -> Result<NodeStatus, PluginError> {
        let w = Self::node_request(req);
        let s = cm_call!(
            self,
            "node-state",
            self.node_policy(req),
            Some(req.node.clone()),
            |s, g| g.call_node_state(s, &w),
            |_| 0
        )?;
        Ok(status_from_wit(s))
    }

    async fn node_attribute(
        &self,
        req: &CmNodeRequest,
        attribute: &str,
    ) -> Result<Option<Value>, PluginError> {
        let w = Self::node_request(req);
        let a = attribute.to_string();
        let r = cm_call!(
            self,
            "node-attribute",
            self.node_policy(req),
            Some(req.node.clone()),
            |s, g| g.call_node_attribute(s, &w, &a),
            |o: &Option<String>| o.as_ref().map_or(0, String::len)
        )?;
        match r {
            Some(j) => parse_json(&j, self.name(), "node-attribute").map(Some),
            None => Ok(None),
        }
    }

    async fn resolve_attributes(&self, req: &CmNodeRequest) -> Result<Value, PluginError> {
        let w = Self::node_request(req);
        let r = cm_call!(
            self,
            "resolve-attributes",
            self.node_policy(req),
            Some(req.node.clone()),
            |s, g| g.call_resolve_attributes(s, &w),
            String::len
        )?;
        parse_json(&r, self.name(), "resolve-attributes")
    }
}
