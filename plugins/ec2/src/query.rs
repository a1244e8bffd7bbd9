//! The EC2 Query API on the wire: signed form-encoded POST requests (API version
//! 2016-11-15), the XML answers (instances, errors) and how an error answer maps to a
//! retryable or permanent [`PluginError`].
//!
//! Pure: builds bytes and parses bytes; sending is the caller's business. Error messages
//! carry the API's error code and message, never the request's signature or secret.

use crate::config::Endpoint;
use crate::sigv4::{self, Key};
use occopus_sdk::PluginError;

/// EC2 API version spoken.
pub const API_VERSION: &str = "2016-11-15";
/// Service name in the signature scope.
pub const SERVICE: &str = "ec2";
/// Content type of the form body (signed).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A signed request ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Prepared {
    pub url: String,
    /// Headers to send (the host adds `Host` itself, from the URL, as signed here).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("url", &self.url)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish_non_exhaustive()
    }
}

/// `k=v&…` form encoding: SigV4's percent-encoding, with spaces as `+` (what HTML forms
/// and most SDKs send; servers that check the signature against a re-encoded form, like
/// the moto emulator, re-encode spaces that way).
pub fn form_encode(params: &[(String, String)]) -> String {
    let enc = |s: &str| sigv4::uri_encode(s).replace("%20", "+");
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Build and sign `Action=<action>&Version=…&<params>` for `endpoint` in `region` at
/// `now_ms` (Unix milliseconds).
pub fn prepare(
    endpoint: &Endpoint,
    region: &str,
    key: &Key,
    action: &str,
    params: &[(String, String)],
    now_ms: u64,
) -> Prepared {
    let mut all = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), API_VERSION.to_string()),
    ];
    all.extend(params.iter().cloned());
    let body = form_encode(&all).into_bytes();
    let amz_date = sigv4::amz_date(now_ms);
    let mut signed_headers = vec![
        ("Content-Type".to_string(), CONTENT_TYPE.to_string()),
        ("Host".to_string(), endpoint.host.clone()),
        ("X-Amz-Date".to_string(), amz_date.clone()),
    ];
    if let Some(token) = &key.session_token {
        signed_headers.push(("X-Amz-Security-Token".to_string(), token.clone()));
    }
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: &endpoint.path,
            query: &[],
            headers: &signed_headers,
            payload: &body,
        },
        key,
        region,
        SERVICE,
        &amz_date,
    );
    let mut headers: Vec<(String, String)> = signed_headers
        .into_iter()
        .filter(|(k, _)| k != "Host")
        .collect();
    headers.push(("Authorization".to_string(), signed.authorization));
    Prepared {
        url: endpoint.url.clone(),
        headers,
        body,
    }
}

/// One instance as EC2 describes it (the fields the plugin uses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: String,
    /// `stateReason` code and message (`Client.UserInitiatedShutdown: …`).
    pub state_reason: Option<String>,
    /// `reason` (state transition reason).
    pub transition_reason: Option<String>,
    pub image_id: Option<String>,
    pub instance_type: Option<String>,
    pub public_dns: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub launch_time: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Instance {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text(n: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn items<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children()
        .filter(|c| c.is_element() && c.tag_name().name() == "item")
}

fn parse_doc(xml: &str) -> Result<roxmltree::Document<'_>, PluginError> {
    roxmltree::Document::parse(xml).map_err(|e| {
        PluginError::internal(format!(
            "EC2 answered with malformed XML ({e}); it starts with: {}",
            snippet(xml)
        ))
    })
}

/// Every instance in a `RunInstances` or `DescribeInstances` answer.
pub fn parse_instances(xml: &str) -> Result<Vec<Instance>, PluginError> {
    let doc = parse_doc(xml)?;
    let mut out = Vec::new();
    for set in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "instancesSet")
    {
        for item in items(set) {
            let Some(id) = text(item, "instanceId") else {
                continue;
            };
            let state = child(item, "instanceState")
                .and_then(|s| text(s, "name"))
                .unwrap_or_default();
            let state_reason = child(item, "stateReason").and_then(|r| {
                match (text(r, "code"), text(r, "message")) {
                    // EC2 usually repeats the code at the start of the message.
                    (Some(c), Some(m)) if m.starts_with(&c) => Some(m),
                    (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                    (Some(c), None) => Some(c),
                    (None, m) => m,
                }
            });
            let tags = child(item, "tagSet")
                .map(|t| {
                    items(t)
                        .filter_map(|i| {
                            Some((text(i, "key")?, text(i, "value").unwrap_or_default()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Instance {
                id,
                state,
                state_reason,
                transition_reason: text(item, "reason"),
                image_id: text(item, "imageId"),
                instance_type: text(item, "instanceType"),
                public_dns: text(item, "dnsName"),
                public_ip: text(item, "ipAddress"),
                private_ip: text(item, "privateIpAddress"),
                launch_time: text(item, "launchTime"),
                tags,
            });
        }
    }
    Ok(out)
}

/// An error answer: HTTP status, EC2 error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `Retry-After`, if the answer had one.
    pub retry_after_ms: Option<u64>,
}

/// Read `<Response><Errors><Error><Code>…` (EC2) or `<ErrorResponse><Error>…` (other AWS
/// front ends). A body that is not such XML keeps its first characters as the message.
pub fn parse_error(status: u16, body: &str, retry_after_ms: Option<u64>) -> ApiError {
    let found = roxmltree::Document::parse(body).ok().and_then(|doc| {
        let err = doc
            .descendants()
            .find(|n| n.is_element() && n.tag_name().name() == "Error")?;
        Some((text(err, "Code")?, text(err, "Message").unwrap_or_default()))
    });
    let (code, message) = found.unwrap_or_else(|| (format!("HTTP{status}"), snippet(body)));
    ApiError {
        status,
        code,
        message,
        retry_after_ms,
    }
}

/// Codes that mean "slow down" or "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "InsufficientInstanceCapacity",
];

/// Codes that mean the credentials themselves were refused.
const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "InvalidSecurity",
    "ExpiredToken",
    "RequestExpired",
];

/// The section field an EC2 error code is about, if it names one.
fn field_of(code: &str) -> Option<&'static str> {
    let starts = |p: &str| code.starts_with(p);
    if starts("InvalidAMIID") || starts("InvalidAMIName") {
        Some("/image_id")
    } else if starts("InvalidSubnet") {
        Some("/subnet_id")
    } else if starts("InvalidGroup") || starts("InvalidSecurityGroup") {
        Some("/security_group_ids")
    } else if starts("InvalidKeyPair") {
        Some("/key_name")
    } else if starts("InvalidInstanceType") {
        Some("/instance_type")
    } else if starts("InvalidTag") {
        Some("/tags")
    } else {
        None
    }
}

impl ApiError {
    /// The engine-facing error: transient for throttling, 5xx and 429; invalid-config for
    /// refused credentials and bad parameters; not-found for unknown instances; conflict
    /// for a reused client token; internal (permanent) for the rest.
    pub fn into_plugin_error(self, what: &str) -> PluginError {
        let text = format!("{what}: {}: {}", self.code, self.message);
        let code = self.code.as_str();
        if TRANSIENT_CODES.contains(&code) || self.status == 429 || self.status >= 500 {
            return PluginError::Transient {
                message: text,
                retry_after_ms: self.retry_after_ms,
            };
        }
        if AUTH_CODES.contains(&code) || (code.starts_with("HTTP") && self.status == 401) {
            return PluginError::invalid(
                "",
                format!(
                    "{text} (EC2 refused the credentials: check `accesskey` and `secretkey` in the auth data, and the clock)"
                ),
            );
        }
        if code == "UnauthorizedOperation" || code == "OptInRequired" || code == "Blocked" {
            return PluginError::internal(format!("{text} (the credentials lack permission)"));
        }
        if code.starts_with("InvalidInstanceID") && code.ends_with("NotFound") {
            return PluginError::not_found(text);
        }
        if code == "IdempotentParameterMismatch" {
            return PluginError::conflict(format!(
                "{text} (an earlier create of this node used other parameters)"
            ));
        }
        if let Some(path) = field_of(code) {
            return PluginError::invalid(path, text);
        }
        if code.starts_with("InvalidParameter")
            || code.starts_with("MissingParameter")
            || code.starts_with("InvalidUserData")
            || code == "Unsupported"
            || code == "ValidationError"
        {
            return PluginError::invalid("", text);
        }
        PluginError::internal(text)
    }
}

/// At most 300 characters of `s`, on one line.
pub fn snippet(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r1</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-0abc</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>80</code><name>stopped</name></instanceState>
          <privateDnsName>ip-10-0-0-5.ec2.internal</privateDnsName>
          <dnsName/>
          <reason>User initiated (2026-12-03 10:00:00 GMT)</reason>
          <instanceType>t3.micro</instanceType>
          <launchTime>2026-12-03T09:00:00.000Z</launchTime>
          <privateIpAddress>10.0.0.5</privateIpAddress>
          <stateReason><code>Client.UserInitiatedShutdown</code><message>Client.UserInitiatedShutdown: User initiated shutdown</message></stateReason>
          <groupSet><item><groupId>sg-1</groupId></item></groupSet>
          <tagSet>
            <item><key>occopus:node-id</key><value>n-1</value></item>
            <item><key>empty</key><value/></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-0def</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <dnsName>ec2-54-1-2-3.compute-1.amazonaws.com</dnsName>
          <ipAddress>54.1.2.3</ipAddress>
          <privateIpAddress>10.0.0.6</privateIpAddress>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    #[test]
    fn instances_are_read_from_describe_answers() {
        let list = parse_instances(DESCRIBE).unwrap();
        assert_eq!(list.len(), 2);
        let a = &list[0];
        assert_eq!(a.id, "i-0abc");
        assert_eq!(a.state, "stopped");
        assert_eq!(
            a.state_reason.as_deref(),
            Some("Client.UserInitiatedShutdown: User initiated shutdown")
        );
        assert_eq!(a.public_dns, None);
        assert_eq!(a.private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(a.tag("occopus:node-id"), Some("n-1"));
        assert_eq!(a.tag("empty"), Some(""));
        assert_eq!(a.tags.len(), 2, "group items are not tags");
        let b = &list[1];
        assert_eq!(b.state, "running");
        assert_eq!(b.public_ip.as_deref(), Some("54.1.2.3"));
        assert!(b.tags.is_empty());
        assert!(
            parse_instances(
                "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>"
            )
            .unwrap()
            .is_empty()
        );
        let e = parse_instances("<html").unwrap_err();
        assert!(matches!(e, PluginError::Internal(_)), "{e}");
    }

    fn err(status: u16, code: &str) -> PluginError {
        let body = format!(
            "<?xml version=\"1.0\"?><Response><Errors><Error><Code>{code}</Code><Message>msg of {code}</Message></Error></Errors><RequestID>x</RequestID></Response>"
        );
        parse_error(status, &body, None).into_plugin_error("RunInstances")
    }

    #[test]
    fn error_codes_map_to_retry_semantics() {
        for (status, code) in [
            (503, "RequestLimitExceeded"),
            (400, "Throttling"),
            (500, "InternalError"),
            (503, "Whatever"),
            (429, "Whatever"),
        ] {
            let e = err(status, code);
            assert!(e.is_retryable(), "{status} {code}: {e:?}");
            assert!(e.to_string().contains(code), "{e}");
        }
        for code in [
            "AuthFailure",
            "SignatureDoesNotMatch",
            "InvalidClientTokenId",
        ] {
            let e = err(401, code);
            assert!(!e.is_retryable());
            assert!(
                matches!(&e, PluginError::InvalidConfig { path, message } if path.is_empty() && message.contains(code) && message.contains("credentials")),
                "{e:?}"
            );
        }
        assert!(matches!(
            err(400, "InvalidInstanceID.NotFound"),
            PluginError::NotFound(_)
        ));
        assert!(matches!(
            err(400, "IdempotentParameterMismatch"),
            PluginError::Conflict(_)
        ));
        for (code, field) in [
            ("InvalidAMIID.NotFound", "/image_id"),
            ("InvalidSubnetID.NotFound", "/subnet_id"),
            ("InvalidGroup.NotFound", "/security_group_ids"),
            ("InvalidKeyPair.NotFound", "/key_name"),
            ("InvalidParameterValue", ""),
        ] {
            match err(400, code) {
                PluginError::InvalidConfig { path, message } => {
                    assert_eq!(path, field, "{code}");
                    assert!(message.contains(&format!("msg of {code}")), "{message}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            err(403, "UnauthorizedOperation"),
            PluginError::Internal(_)
        ));
        assert!(matches!(
            err(400, "SomethingElse"),
            PluginError::Internal(_)
        ));
    }

    #[test]
    fn non_xml_errors_keep_the_status_and_body_start() {
        let e = parse_error(502, "<html>Bad gateway</html>", Some(2000));
        assert_eq!(e.code, "HTTP502");
        let e = e.into_plugin_error("DescribeInstances");
        assert_eq!(e.retry_after_ms_hint(), Some(2000));
        assert!(e.to_string().contains("Bad gateway"), "{e}");
        let e = parse_error(401, "denied", None).into_plugin_error("x");
        assert!(matches!(e, PluginError::InvalidConfig { .. }), "{e:?}");
    }

    trait Hint {
        fn retry_after_ms_hint(&self) -> Option<u64>;
    }
    impl Hint for PluginError {
        fn retry_after_ms_hint(&self) -> Option<u64> {
            match self {
                PluginError::Transient { retry_after_ms, .. } => *retry_after_ms,
                _ => None,
            }
        }
    }

    #[test]
    fn prepared_requests_are_signed_form_posts() {
        let ep = Endpoint::parse("http://127.0.0.1:5000").unwrap();
        let key = Key {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "very-secret".into(),
            session_token: Some("tok".into()),
        };
        let p = prepare(
            &ep,
            "us-east-1",
            &key,
            "DescribeInstances",
            &[
                ("Filter.1.Name".into(), "tag:occopus:node-id".into()),
                ("UserData".into(), "a+b/c=".into()),
                ("Description".into(), "two words~".into()),
            ],
            1_440_938_160_000,
        );
        assert_eq!(p.url, "http://127.0.0.1:5000/");
        assert_eq!(
            String::from_utf8(p.body.clone()).unwrap(),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Aoccopus%3Anode-id&UserData=a%2Bb%2Fc%3D&Description=two+words~"
        );
        let h = |name: &str| {
            p.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("X-Amz-Date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(h("X-Amz-Security-Token").as_deref(), Some("tok"));
        assert_eq!(h("Host"), None, "the host sets Host from the URL");
        let auth = h("Authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
        // The signature covers the Host header the host will send.
        let mut signed = p.headers.clone();
        signed.retain(|(k, _)| k != "Authorization");
        signed.push(("Host".into(), "127.0.0.1:5000".into()));
        let again = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query: &[],
                headers: &signed,
                payload: &p.body,
            },
            &key,
            "us-east-1",
            "ec2",
            "20150830T123600Z",
        );
        assert_eq!(auth, again.authorization);
        assert!(!format!("{p:?}").contains("very-secret"));
    }
}
