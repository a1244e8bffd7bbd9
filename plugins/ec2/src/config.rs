//! The `ec2` resource section and auth entry: serde types, checks beyond the JSON Schema,
//! the schema itself, and the endpoint URL split into the parts signing needs.
//!
//! Pure: no host calls. Error messages name fields, never credential values.

use occopus_sdk::{Credentials, PluginError, Result};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Tag keys the plugin writes itself; user tags may not use this prefix.
pub const TAG_PREFIX: &str = "occopus:";
/// EC2 user data limit, before base64 encoding.
pub const MAX_USER_DATA: usize = 16 * 1024;

/// The rendered `resource` section of type `ec2` (Occopus 1.10's schema: `type`,
/// `endpoint`, `regionname`, `image_id`, `instance_type` required; `key_name`,
/// `security_group_ids`, `subnet_id`, `tags`, `name` optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Section {
    #[serde(rename = "type")]
    pub type_name: String,
    /// EC2 API endpoint URL (`https://ec2.eu-west-1.amazonaws.com`).
    pub endpoint: String,
    /// Region, part of the signature scope (`eu-west-1`).
    pub regionname: String,
    pub image_id: String,
    pub instance_type: String,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Extra instance tags; scalar values are written as text.
    #[serde(default)]
    pub tags: Map<String, Value>,
    /// A label for logs (and an auth-data selector); defaults to the endpoint.
    #[serde(default)]
    pub name: Option<String>,
}

impl Ec2Section {
    /// Parse and check a section.
    pub fn parse(section: &Value) -> Result<Self> {
        let s: Self = occopus_sdk::parse_section(section)?;
        s.check()?;
        Ok(s)
    }

    /// Structural checks, like Occopus's schema checker: a description with placeholder
    /// values (`replace_with_endpoint_of_ec2_interface_of_your_cloud`) still validates.
    /// The values a request needs are checked by [`check_for_cloud`](Self::check_for_cloud).
    fn check(&self) -> Result<()> {
        for (path, value) in [
            ("/regionname", &self.regionname),
            ("/image_id", &self.image_id),
            ("/instance_type", &self.instance_type),
        ] {
            if value.trim().is_empty() {
                return Err(PluginError::invalid(path, "must not be empty"));
            }
        }
        for (i, g) in self.security_group_ids.iter().enumerate() {
            if g.trim().is_empty() {
                return Err(PluginError::invalid(
                    format!("/security_group_ids/{i}"),
                    "must not be empty",
                ));
            }
        }
        self.user_tags()?;
        Ok(())
    }

    /// What calling the cloud needs on top of [`parse`](Self::parse): an endpoint URL and
    /// a region name. Fails before any request is made.
    pub fn check_for_cloud(&self) -> Result<Endpoint> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        check_region(&self.regionname)?;
        Ok(endpoint)
    }

    /// The user's tags as text, checked against EC2's rules and the reserved prefixes.
    pub fn user_tags(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(self.tags.len());
        for (k, v) in &self.tags {
            let path = format!("/tags/{}", k.replace('~', "~0").replace('/', "~1"));
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(PluginError::invalid(
                        path,
                        "tag values must be text, numbers or booleans",
                    ));
                }
            };
            if k.is_empty() || k.chars().count() > 128 {
                return Err(PluginError::invalid(
                    path,
                    "tag keys have 1 to 128 characters",
                ));
            }
            if value.chars().count() > 256 {
                return Err(PluginError::invalid(
                    path,
                    "tag values have at most 256 characters",
                ));
            }
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("aws:") || lower.starts_with(TAG_PREFIX) {
                return Err(PluginError::invalid(
                    path,
                    format!("tag keys starting with `aws:` or `{TAG_PREFIX}` are reserved"),
                ));
            }
            out.push((k.clone(), value));
        }
        Ok(out)
    }

    /// What to call this cloud in messages.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.endpoint)
    }
}

/// A region name is what goes into the signature scope: letters, digits and `-`.
pub fn check_region(region: &str) -> Result<()> {
    if region.is_empty() || region.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        return Err(PluginError::invalid(
            "/regionname",
            format!("`{region}` is not a region name (like `eu-west-1`)"),
        ));
    }
    Ok(())
}

/// The auth-data entry of an `ec2` section (`accesskey`, `secretkey`, optionally
/// `session_token` for temporary credentials).
pub fn key_from(c: &Credentials) -> Result<crate::sigv4::Key> {
    let access_key = c.require_str("accesskey")?.to_string();
    let secret_key = c.require_str("secretkey")?.to_string();
    if access_key.is_empty() || secret_key.is_empty() {
        return Err(PluginError::invalid(
            "",
            "credentials: `accesskey` and `secretkey` must not be empty",
        ));
    }
    Ok(crate::sigv4::Key {
        access_key,
        secret_key,
        session_token: c.get_str("session_token").map(str::to_string),
    })
}

/// An `http(s)://host[:port][/path]` endpoint, split the way signing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL requests go to (`http://127.0.0.1:5000/`).
    pub url: String,
    /// `Host` header value: lower-case host, port only when not the scheme's default.
    pub host: String,
    /// Path (`/` when none was written).
    pub path: String,
}

impl Endpoint {
    /// Parse an endpoint URL. Errors point at `/endpoint`.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            PluginError::invalid(
                "/endpoint",
                format!("`{url}` {why} (expected `https://host[:port][/path]`)"),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => "443",
            "http" => "80",
            _ => return Err(bad("is not an http or https URL")),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad("must not carry user information"));
        }
        if authority.contains(|c: char| c.is_whitespace()) || path.contains(' ') {
            return Err(bad("must not contain spaces"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("has a bad IPv6 host"))?;
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or_else(|| bad("has a bad port"))?),
                };
                (format!("[{}]", h.to_ascii_lowercase()), port)
            }
            None => match authority.split_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            },
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("has no host"));
        }
        let host_header = match port {
            Some(p) if p.parse::<u16>().is_err() => return Err(bad("has a bad port")),
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.clone(),
        };
        Ok(Self {
            url: format!("{scheme}://{host_header}{path}"),
            host: host_header,
            path: path.to_string(),
        })
    }
}

/// JSON Schema of the `ec2` section.
pub fn schema() -> Value {
    let text = |d: &str| json!({"type": "string", "minLength": 1, "description": d});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ec2 resource",
        "type": "object",
        "properties": {
            "type": {"const": "ec2"},
            "endpoint": text("EC2 API endpoint URL, e.g. https://ec2.eu-west-1.amazonaws.com"),
            "regionname": text("Region of the endpoint, e.g. eu-west-1 (part of the request signature)."),
            "image_id": text("AMI id."),
            "instance_type": text("Instance type, e.g. t3.micro."),
            "key_name": text("Name of an existing key pair."),
            "security_group_ids": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "description": "Security group ids (sg-...)."
            },
            "subnet_id": text("Subnet id (subnet-...)."),
            "tags": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "Extra instance tags (key: value)."
            },
            "name": text("Label for logs and auth-data selection; defaults to the endpoint.")
        },
        "required": ["type", "endpoint", "regionname", "image_id", "instance_type"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Value {
        json!({
            "type": "ec2",
            "endpoint": "https://EC2.eu-west-1.amazonaws.com",
            "regionname": "eu-west-1",
            "image_id": "ami-12345678",
            "instance_type": "t3.micro"
        })
    }

    #[test]
    fn minimal_and_full_sections_parse() {
        let s = Ec2Section::parse(&section()).unwrap();
        assert_eq!(s.label(), "https://EC2.eu-west-1.amazonaws.com");
        let mut full = section();
        full["key_name"] = json!("k");
        full["security_group_ids"] = json!(["sg-1", "sg-2"]);
        full["subnet_id"] = json!("subnet-1");
        full["tags"] = json!({"owner": "me", "cost": 3, "prod": false});
        full["name"] = json!("aws");
        let s = Ec2Section::parse(&full).unwrap();
        assert_eq!(s.label(), "aws");
        assert_eq!(
            s.user_tags().unwrap(),
            vec![
                ("owner".to_string(), "me".to_string()),
                ("cost".into(), "3".into()),
                ("prod".into(), "false".into())
            ]
        );
    }

    #[test]
    fn bad_fields_are_reported_at_their_pointer() {
        let mut s = section();
        s["imgae_id"] = json!("x");
        let e = Ec2Section::parse(&s).unwrap_err();
        assert!(e.to_string().contains("unknown field `imgae_id`"), "{e}");

        let mut s = section();
        s.as_object_mut().unwrap().remove("image_id");
        assert_eq!(
            Ec2Section::parse(&s).unwrap_err(),
            PluginError::invalid("/image_id", "required field is missing")
        );

        let mut s = section();
        s["tags"] = json!({"occopus:node-id": "x"});
        let PluginError::InvalidConfig { path, .. } = Ec2Section::parse(&s).unwrap_err() else {
            panic!()
        };
        assert_eq!(path, "/tags/occopus:node-id");

        let mut s = section();
        s["tags"] = json!({"a": {"b": 1}});
        assert!(Ec2Section::parse(&s).is_err());

        // Placeholders validate (as in Occopus); calling the cloud refuses them.
        let mut s = section();
        s["regionname"] = json!("replace_with_regionname_of_your_ec2_interface");
        s["endpoint"] = json!("replace_with_endpoint_of_ec2_interface_of_your_cloud");
        let parsed = Ec2Section::parse(&s).unwrap();
        let PluginError::InvalidConfig { path, .. } = parsed.check_for_cloud().unwrap_err() else {
            panic!()
        };
        assert_eq!(path, "/endpoint");
        s["endpoint"] = json!("https://ec2.example.com");
        let parsed = Ec2Section::parse(&s).unwrap();
        let PluginError::InvalidConfig { path, .. } = parsed.check_for_cloud().unwrap_err() else {
            panic!()
        };
        assert_eq!(path, "/regionname");
        s["regionname"] = json!("eu-west-1");
        assert!(Ec2Section::parse(&s).unwrap().check_for_cloud().is_ok());

        let mut s = section();
        s["security_group_ids"] = json!(["sg-1", " "]);
        let PluginError::InvalidConfig { path, .. } = Ec2Section::parse(&s).unwrap_err() else {
            panic!()
        };
        assert_eq!(path, "/security_group_ids/1");
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            e,
            Endpoint {
                url: "http://127.0.0.1:5000/".into(),
                host: "127.0.0.1:5000".into(),
                path: "/".into()
            }
        );
        let e = Endpoint::parse("HTTPS://Ec2.Example.com:443/api/").unwrap();
        assert_eq!(e.host, "ec2.example.com");
        assert_eq!(e.url, "https://ec2.example.com/api/");
        assert_eq!(e.path, "/api/");
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!(e.host, "[::1]:8080");
        let e = Endpoint::parse("http://host:80/").unwrap();
        assert_eq!(e.host, "host");
        for bad in [
            "ec2.amazonaws.com",
            "ftp://x",
            "http://",
            "http://u:p@host/",
            "http://host:port/",
            "http://host/?a=b",
            "replace_with_endpoint_of_ec2_interface_of_your_cloud",
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert!(
                matches!(&e, PluginError::InvalidConfig { path, .. } if path == "/endpoint"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn credentials_need_both_keys_and_never_show_them() {
        let c = Credentials::new(json!({"accesskey": "AKIA1", "secretkey": "s3cr3t"}));
        let k = key_from(&c).unwrap();
        assert_eq!(k.access_key, "AKIA1");
        assert!(!format!("{k:?}").contains("s3cr3t"));
        let e = key_from(&Credentials::new(json!({"accesskey": "AKIA1"}))).unwrap_err();
        assert!(e.to_string().contains("secretkey"), "{e}");
        let e = key_from(&Credentials::new(
            json!({"accesskey": "", "secretkey": "zz9"}),
        ))
        .unwrap_err();
        assert!(!e.to_string().contains("zz9"), "{e}");
    }

    #[test]
    fn schema_lists_the_occopus_keys() {
        let s = schema();
        let props = s["properties"].as_object().unwrap();
        for k in [
            "type",
            "endpoint",
            "regionname",
            "image_id",
            "instance_type",
            "key_name",
            "security_group_ids",
            "subnet_id",
            "tags",
            "name",
        ] {
            assert!(props.contains_key(k), "{k}");
        }
        assert_eq!(
            s["required"],
            json!([
                "type",
                "endpoint",
                "regionname",
                "image_id",
                "instance_type"
            ])
        );
    }
}
