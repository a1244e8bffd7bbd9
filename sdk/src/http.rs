//! Outbound HTTP through the host's `http` import.
//!
//! ```no_run
//! use occopus_sdk::http::Http;
//! # fn f() -> occopus_sdk::Result<()> {
//! #[derive(serde::Deserialize)]
//! struct Server { id: String }
//! let server: Server = Http::post("https://cloud.example/v2/servers")
//!     .header("X-Auth-Token", "…")
//!     .json(&serde_json::json!({"name": "web-1"}))
//!     .send()?                 // connection failures: transient errors
//!     .error_for_status()?     // 429/5xx: transient (Retry-After honoured), 404: not-found, ...
//!     .json()?;
//! # Ok(()) }
//! ```
//!
//! The host checks every request against the plugin's reachable endpoints (those written
//! in its section and auth entry, plus granted capabilities) and answers `denied` for the
//! rest. It does not follow redirects. Outside the plugin host, [`Http::send`] returns an
//! internal error: unit-test plugin logic behind a trait of your own instead.

use crate::error::{PluginError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A request being built. `Debug` shows method, URL and header *names* only.
#[derive(Clone)]
pub struct Http {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
    unix_socket: Option<String>,
    error: Option<PluginError>,
}

impl Http {
    /// A request with any method.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            unix_socket: None,
            error: None,
        }
    }
    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// `HEAD url`.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new("HEAD", url)
    }
    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }
    /// `PATCH url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }
    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }
    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }
    /// A JSON body (and `Content-Type: application/json`). A value that cannot be
    /// serialised makes [`send`](Self::send) fail with an internal error.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some(bytes);
                self.header("Content-Type", "application/json")
            }
            Err(e) => {
                self.error = Some(PluginError::internal(format!(
                    "cannot serialise the JSON body of {} {}: {e}",
                    self.method, self.url
                )));
                self
            }
        }
    }
    /// A raw body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }
    /// Per-request timeout, capped by the host at the call's remaining time budget.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
    /// Speak HTTP over this unix socket (`/var/run/docker.sock`); the URL's host part only
    /// fills the `Host` header.
    pub fn unix_socket(mut self, path: impl Into<String>) -> Self {
        self.unix_socket = Some(path.into());
        self
    }
    /// `METHOD url`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.url)
    }
    /// Send the request. Connection failures are transient errors; answers of any status
    /// are `Ok` (see [`Response::error_for_status`]).
    pub fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let what = self.describe();
        let (status, headers, body) = imp::send(self)?;
        Ok(Response {
            what,
            status,
            headers,
            body,
        })
    }
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Http")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &names)
            .field("unix_socket", &self.unix_socket)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    what: String,
    /// Status code.
    pub status: u16,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response as the host would return it, for tests of code that takes responses.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            what: "request".into(),
            status,
            headers,
            body: body.into(),
        }
    }
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// 3xx.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Parse the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PluginError::internal(format!(
                "{}: answer (HTTP {}) is not the expected JSON: {e}; body starts with: {}",
                self.what,
                self.status,
                self.snippet()
            ))
        })
    }
    /// `Retry-After` in milliseconds (delta-seconds form only).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000))
    }
    /// `Ok(self)` for 1xx–3xx, else the matching [`PluginError`] (see
    /// [`PluginError::from_http_status`]) with a snippet of the body.
    pub fn error_for_status(self) -> Result<Self> {
        match PluginError::from_http_status(
            self.status,
            &self.what,
            &self.snippet(),
            self.retry_after_ms(),
        ) {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
    /// At most 300 characters of the body, on one line.
    fn snippet(&self) -> String {
        let text = self.text();
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match one_line.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &one_line[..i]),
            None => one_line,
        }
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Answer, Http};
    use crate::bindings::host::occopus::plugin::http as wit;
    use crate::error::Result;

    pub(super) fn send(r: Http) -> Result<Answer> {
        let req = wit::Request {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
            timeout_ms: r.timeout_ms,
            unix_socket: r.unix_socket,
        };
        let resp = wit::send(&req)?;
        Ok((resp.status, resp.headers, resp.body))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Answer, Http};
    use crate::error::{PluginError, Result};

    pub(super) fn send(r: Http) -> Result<Answer> {
        Err(PluginError::internal(format!(
            "{}: the `http` host import is only available inside the plugin host",
            r.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            what: "GET https://x/y".into(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn throttling_becomes_transient_with_retry_after() {
        let e = resp(429, &[("retry-after", "3")], "slow down")
            .error_for_status()
            .unwrap_err();
        assert_eq!(
            e,
            PluginError::transient_after("GET https://x/y: HTTP 429: slow down", 3000)
        );
    }

    #[test]
    fn success_passes_and_parses_json() {
        let r = resp(
            200,
            &[("Content-Type", "application/json")],
            r#"{"id":"a"}"#,
        );
        let r = r.error_for_status().unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["id"], "a");
        let bad = resp(200, &[], "<html>")
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(bad.to_string().contains("<html>"), "{bad}");
    }

    #[test]
    fn debug_hides_header_values() {
        let h = Http::get("https://x").bearer("s3cret");
        let d = format!("{h:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("Authorization"), "{d}");
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "x".repeat(1000);
        let e = resp(500, &[], &body).error_for_status().unwrap_err();
        assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    }
}
