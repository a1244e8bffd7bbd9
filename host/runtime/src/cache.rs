//! On-disk cache of compiled plugin components.
//!
//! Owns: the cache directory (created private, `0700`), the key
//! (`<sha256 of the component>-<hash of the engine's compatibility hash>.cwasm`), atomic
//! publication (write to a temporary file, fsync, rename) and recovery (an entry that
//! fails to load is deleted and the component recompiled). Must not: load anything from a
//! directory other users can write, or rewrite a file in place (entries are mmapped).

use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Loaded from a cache entry.
    Hit,
    /// Compiled and stored.
    Miss,
    /// An entry existed but could not be loaded; it was deleted and replaced.
    Recovered,
    /// No cache directory: compiled in memory.
    Disabled,
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A `Hasher` feeding sha256, so the engine key is stable across processes and Rust
/// versions (unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Short hex key of the engine's compatibility hash (wasmtime version and every
/// codegen-relevant setting).
pub fn engine_key(engine: &Engine) -> String {
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex(&h.0.finalize()[..8])
}

/// The compiled-artifact cache.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `dir` (created `0700` if missing). A directory that cannot be made
    /// private disables the cache with a warning: artifacts are native code.
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let engine_key = engine_key(engine);
        let dir = dir.and_then(|d| match prepare_dir(d) {
            Ok(()) => Some(d.to_path_buf()),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "compiled-plugin cache disabled");
                None
            }
        });
        Self { dir, engine_key }
    }

    /// The cache directory, if enabled.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Path of the entry for a component with this digest.
    pub fn entry_path(&self, digest_hex: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{digest_hex}-{}.cwasm", self.engine_key)))
    }

    /// Load the compiled form of `wasm` (whose sha256 is `digest_hex`) from the cache, or
    /// compile it and store it. Blocking (compilation is CPU work): call from
    /// `spawn_blocking`.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest_hex: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.entry_path(digest_hex) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Disabled));
        };
        let mut outcome = CacheOutcome::Miss;
        if path.exists() {
            // SAFETY: the cache directory is private to this user (checked in `new`), and
            // entries are only ever published whole by `store` below (tmp + rename), never
            // modified in place. wasmtime validates the header and the engine settings and
            // returns an error for a foreign or damaged artifact.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => {
                    tracing::debug!(entry = %path.display(), "compiled-plugin cache hit");
                    return Ok((c, CacheOutcome::Hit));
                }
                Err(e) => {
                    tracing::warn!(entry = %path.display(), error = %e, "unusable compiled-plugin cache entry; recompiling");
                    let _ = fs::remove_file(&path);
                    outcome = CacheOutcome::Recovered;
                }
            }
        }
        tracing::debug!(entry = %path.display(), "compiled-plugin cache miss; compiling");
        let compiled = engine.precompile_component(wasm)?;
        if let Err(e) = store(&path, &compiled) {
            tracing::warn!(entry = %path.display(), error = %e, "could not write compiled-plugin cache entry");
            return Ok((Component::new(engine, wasm)?, outcome));
        }
        // SAFETY: as above; the file was just written by us.
        let c = unsafe { Component::deserialize_file(engine, &path)? };
        Ok((c, outcome))
    }
}

fn prepare_dir(d: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)?;
    let meta = fs::metadata(d)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(std::io::Error::other(format!(
            "owned by uid {}, not by this user ({uid})",
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(d, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Publish `bytes` at `path` atomically.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{seq}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
