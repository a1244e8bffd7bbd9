//! Shared helpers: runtimes over a fresh directory of fixtures, and request builders.

use crate::fixtures;
use occopus_model::ids::{InfraId, NodeId, NodeName};
use occopus_model::instance::Addresses;
use occopus_model::plugin::{CreateRequest, HealthRequest, InstanceRef, NodeContext};
use occopus_runtime::{Limits, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config that sees only `dir` (no built-in directories, no environment).
pub fn config(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        plugin_dirs: vec![dir.to_path_buf()],
        builtin_dirs: false,
        env_plugin_path: false,
        max_live_instances: 32,
        limits: Limits {
            timeout_s: 5,
            long_timeout_s: 5,
            ..Limits::default()
        },
        ..RuntimeConfig::default()
    }
}

/// Load the named fixtures (and only them), with `tweak` applied to the config.
pub async fn load_with(
    names: &[&str],
    tweak: impl FnOnce(&mut RuntimeConfig),
) -> (Runtime, TempDir) {
    let dir = fixtures::plugin_dir(names);
    let mut cfg = config(dir.path());
    tweak(&mut cfg);
    let rt = Runtime::load(cfg).await.expect("runtime starts");
    (rt, dir)
}

pub async fn load(names: &[&str]) -> (Runtime, TempDir) {
    load_with(names, |_| {}).await
}

pub fn node(node_id: &str) -> NodeContext {
    NodeContext {
        infra_id: InfraId::new("infra-1"),
        infra_name: "test".into(),
        node_name: NodeName::new_unchecked("web"),
        node_id: NodeId::new(node_id),
        user_id: None,
    }
}

pub fn create(type_name: &str, resource: Value) -> CreateRequest {
    CreateRequest {
        node: node("node-1"),
        type_name: type_name.into(),
        resource,
        context: Some("#cloud-config".into()),
        attributes: json!({"env": ["A=1"]}),
        credentials: None,
    }
}

pub fn instance(type_name: &str, node_id: &str, instance: Value) -> InstanceRef {
    InstanceRef {
        node: node(node_id),
        type_name: type_name.into(),
        resource: json!({}),
        credentials: None,
        instance,
    }
}

pub fn health(section: Value, primary: &str) -> HealthRequest {
    HealthRequest {
        node: node("node-1"),
        type_name: "fixture-health".into(),
        section,
        addresses: Addresses {
            primary: Some(primary.into()),
            private: None,
            all: vec![],
        },
    }
}

/// An HTTP server on 127.0.0.1 answering `hello` to every connection, and counting them.
pub async fn http_server() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                )
                .await;
        }
    });
    (port, seen)
}
