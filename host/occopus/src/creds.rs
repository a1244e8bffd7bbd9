//! The engine's [`CredentialSource`] over Occopus's `auth_data.yaml`: a rendered section
//! picks the one entry whose selectors all equal its values (sub-dictionary matching).
//! Owns only that adaptation; messages name selectors, never secrets.

use occopus_description::AuthData;
use occopus_engine::CredentialSource;
use occopus_model::Secret;
use occopus_model::plugin::PluginKind;
use serde_json::{Map, Value};

/// Credentials selected from auth data.
#[derive(Debug, Clone, Default)]
pub struct AuthCredentials {
    auth: AuthData,
}

impl AuthCredentials {
    /// Wrap loaded auth data.
    pub fn new(auth: AuthData) -> Self {
        Self { auth }
    }
}

impl CredentialSource for AuthCredentials {
    fn select(
        &self,
        section: &str,
        rendered: &Map<String, Value>,
    ) -> Result<Option<Secret<Value>>, String> {
        let kind = match section {
            "config_management" => PluginKind::ConfigManager,
            _ => PluginKind::ResourceHandler,
        };
        self.auth
            .select(kind, rendered)
            .map_err(|e| format!("{e}\n  hint: {}", e.hint()))
    }
}
