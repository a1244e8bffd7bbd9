//! Identifiers: infrastructure ids, node instance ids and node names.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Occopus's name rule for `infra_name` and node `name`: `[a-z0-9-]{1,63}`, case-insensitive
/// (no `.` or `_`).
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Why a string is not a valid Occopus name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a valid name: use 1 to 63 letters, digits or `-` (no `.`, `_` or spaces)"
)]
pub struct NameError {
    pub value: String,
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Identifier of one infrastructure (a UUID v4 string, as Occopus generates, or an id
    /// given with `build -i`).
    InfraId
);
string_id!(
    /// Identifier of one node *instance* (a UUID v4 string). It is also the idempotency key
    /// handed to plugins: a retried or resumed create with the same id must adopt the
    /// resource made earlier instead of making a second one.
    NodeId
);
string_id!(
    /// A node name from the infrastructure description (`[a-z0-9-]{1,63}`).
    NodeName
);

impl InfraId {
    /// Wrap an id without checking it (ids come from UUIDs or from the user's `-i`).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl NodeId {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl NodeName {
    /// Check Occopus's name rule.
    pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if is_valid_name(&s) {
            Ok(Self(s))
        } else {
            Err(NameError { value: s })
        }
    }
    /// Wrap a name already validated elsewhere (e.g. read back from the state store).
    pub fn new_unchecked(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_occopus_rules() {
        assert!(is_valid_name("ping-receiver"));
        assert!(is_valid_name("Web1"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a_b"));
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name(&"a".repeat(64)));
        assert!(is_valid_name(&"a".repeat(63)));
        assert_eq!(NodeName::parse("x y").unwrap_err().value, "x y");
    }
}
