//! `occopus:plugin/http`: outbound HTTP performed by the host.
//!
//! The import checks the URL (or unix socket) against the call's policy, caps bodies,
//! strips hop-by-hop headers and bounds the timeout by the call's remaining budget; the
//! real transport is reqwest (rustls, no redirects) for TCP and hyper over a
//! `tokio::net::UnixStream` for unix sockets.
//!
//! Must not: follow redirects, or send anything before the policy check passed.

use super::{HttpRequest, HttpResponse};
use crate::bindings::host_api::occopus::plugin::http::{Host, Request, Response};
use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::convert::error_to_wit;
use crate::state::PluginState;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use occopus_model::plugin::PluginError;
use std::time::Duration;

/// Headers the host sets or that describe the connection, not the message.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
];

impl Host for PluginState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, WitError>> {
        Ok(self.http_send(req).await.map_err(error_to_wit))
    }
}

impl PluginState {
    async fn http_send(&mut self, req: Request) -> Result<Response, PluginError> {
        let max_body = self.limits().max_http_body_bytes;
        let url = url::Url::parse(&req.url)
            .map_err(|e| PluginError::Internal(format!("bad URL `{}`: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PluginError::Internal(format!(
                "`{}`: only http and https URLs can be sent",
                req.url
            )));
        }
        let verdict = match &req.unix_socket {
            Some(path) => self.call.policy.check_unix(path),
            None => self.call.policy.check_http(&url),
        };
        if let Err(msg) = verdict {
            tracing::warn!(target: "occopus::plugin", plugin = %self.plugin(), operation = self.call.operation, "{msg}");
            return Err(PluginError::Denied(msg));
        }
        if req.method.is_empty()
            || !req
                .method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(PluginError::Internal(format!(
                "`{}` is not an HTTP method",
                req.method
            )));
        }
        if let Some(b) = &req.body
            && b.len() > max_body
        {
            return Err(PluginError::Internal(format!(
                "request body of {} bytes exceeds the limit of {max_body} bytes",
                b.len()
            )));
        }
        let remaining = self.call.remaining();
        if remaining.is_zero() {
            return Err(PluginError::Timeout(
                "the call's time budget is used up".into(),
            ));
        }
        let timeout = req
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(remaining, |t| t.min(remaining));
        let headers = req
            .headers
            .into_iter()
            .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
            .collect();
        let services = self.services();
        let plugin = self.plugin().to_string();
        self.call.in_host_call = Some("http.send");
        let r = services
            .http(
                &plugin,
                HttpRequest {
                    method: req.method,
                    url,
                    headers,
                    body: req.body,
                    timeout,
                    unix_socket: req.unix_socket,
                    max_body,
                },
            )
            .await;
        self.call.in_host_call = None;
        r.map(|r| Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

/// The shared reqwest client: rustls, no redirects, no cookies.
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("occopus/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Send over TCP/TLS with reqwest.
pub(crate) async fn send_tcp(
    client: &reqwest::Client,
    req: HttpRequest,
) -> Result<HttpResponse, PluginError> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| PluginError::Internal(format!("`{}` is not an HTTP method", req.method)))?;
    let target = format!("{} {}", req.method, redact(&req.url));
    let mut b = client.request(method, req.url.clone()).timeout(req.timeout);
    for (k, v) in &req.headers {
        b = b.header(k, v);
    }
    if let Some(body) = req.body {
        b = b.body(body);
    }
    let mut resp = b.send().await.map_err(|e| map_reqwest(&target, &e))?;
    let status = resp.status().as_u16();
    let headers = header_pairs(resp.headers());
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(&target, &e))? {
        if body.len() + chunk.len() > req.max_body {
            return Err(too_large(&target, req.max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Send over a unix socket with hyper (HTTP/1.1).
pub(crate) async fn send_unix(req: HttpRequest, socket: &str) -> Result<HttpResponse, PluginError> {
    let target = format!("{} unix://{socket}{}", req.method, req.url.path());
    let work = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| PluginError::transient(format!("{target}: cannot connect: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| PluginError::transient(format!("{target}: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = match req.url.query() {
            Some(q) => format!("{}?{q}", req.url.path()),
            None => req.url.path().to_string(),
        };
        let mut b = hyper::Request::builder()
            .method(req.method.as_str())
            .uri(path)
            .header(
                hyper::header::HOST,
                req.url.host_str().unwrap_or("localhost"),
            );
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let request = b
            .body(Full::new(Bytes::from(req.body.unwrap_or_default())))
            .map_err(|e| PluginError::Internal(format!("{target}: bad request: {e}")))?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| PluginError::transient(format!("{target}: {e}")))?;
        let status = resp.status().as_u16();
        let headers = header_pairs(resp.headers());
        let body = Limited::new(resp.into_body(), req.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large(&target, req.max_body)
                } else {
                    PluginError::transient(format!("{target}: reading the body: {e}"))
                }
            })?
            .to_bytes()
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(req.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(PluginError::Timeout(format!(
            "{target}: no answer within {} ms",
            req.timeout.as_millis()
        ))),
    }
}

fn header_pairs(h: &hyper::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn too_large(target: &str, max: usize) -> PluginError {
    PluginError::Internal(format!(
        "{target}: response body exceeds the limit of {max} bytes"
    ))
}

/// The URL without user info or query (which may carry credentials), for messages.
fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn map_reqwest(target: &str, e: &reqwest::Error) -> PluginError {
    // reqwest's Display includes the URL with its query; describe the failure without it.
    let kind = if e.is_timeout() {
        return PluginError::Timeout(format!("{target}: no answer in time"));
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        PluginError::transient(format!("{target}: {kind}"))
    } else {
        PluginError::transient(format!("{target}: {kind}: {cause}"))
    }
}
