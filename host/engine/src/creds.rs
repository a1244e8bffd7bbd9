//! Where credentials come from. The engine asks, per call, for the credentials matching a
//! rendered section (Occopus's sub-dictionary matching over `auth_data.yaml`); the facade
//! implements this over the description crate's auth data. Credentials only ever travel
//! inside [`Secret`], straight into plugin requests: never into state, events or errors.

use occopus_model::Secret;
use serde_json::{Map, Value};

/// Selects credentials for a rendered section.
pub trait CredentialSource: Send + Sync {
    /// `section` is `"resource"` or `"config_management"`; `rendered` is the rendered
    /// section. `Ok(None)` when nothing matches (e.g. docker needs none); `Err` with a
    /// message that names no secret when the auth data is ambiguous or broken.
    fn select(
        &self,
        section: &str,
        rendered: &Map<String, Value>,
    ) -> Result<Option<Secret<Value>>, String>;
}

/// No credentials at all (local and simulated backends, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn select(&self, _: &str, _: &Map<String, Value>) -> Result<Option<Secret<Value>>, String> {
        Ok(None)
    }
}
