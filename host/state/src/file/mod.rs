//! The embedded file store: nothing to install.
//!
//! Layout under the root directory chosen by the caller:
//!
//! ```text
//! infras/<infra_id>/meta.json          format, name, created time, ResolvedInfra snapshot
//! infras/<infra_id>/snapshot.jsonl     compacted records (atomic: tmp + fsync + rename)
//! infras/<infra_id>/journal-<g>.jsonl  records appended since that snapshot
//! infras/<infra_id>/lock               flock'ed by the writer; holds its pid and command
//! infras/<infra_id>/nodes/<node_id>/   working directories of local nodes (not ours)
//! node_defs/<node_type>.json           stored node definitions (`occopus import`)
//! ```
//!
//! Every file carries `"format": 1` (journals and snapshots in their header line).

mod format;
mod journal;
mod lock;
mod writer;

use crate::types::Replay;
use crate::{Ack, InfraLock, InfraMeta, InfraState, InfraSummary, LockHolder, Record, StateError};
use async_trait::async_trait;
use format::{document, read_document, write_atomic};
use occopus_model::InfraId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const META: &str = "meta.json";
const INFRAS: &str = "infras";
const NODE_DEFS: &str = "node_defs";

/// Tuning of the file store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Sync (fsync/fdatasync) journals, snapshots and directories. Only tests that do not
    /// care about power loss turn this off.
    pub sync: bool,
    /// A journal is compacted into a snapshot once it is larger than this and larger than
    /// twice the live records.
    pub compact_min_bytes: u64,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            sync: true,
            compact_min_bytes: 4 << 20,
        }
    }
}

/// Counters of the writer, to check that group commit batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Journal syncs performed.
    pub syncs: u64,
    /// Groups written (one per wake-up of the writer).
    pub commits: u64,
    /// Records appended.
    pub records: u64,
    /// Snapshots written by compaction.
    pub compactions: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    syncs: AtomicU64,
    commits: AtomicU64,
    records: AtomicU64,
    compactions: AtomicU64,
}

/// The embedded store. Cheap to clone; all clones share one writer thread.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    opts: FileStoreOptions,
    tx: Mutex<Option<Sender<writer::Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<Stats>,
    swap: Arc<RwLock<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl FileStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        Self::open_with(root, FileStoreOptions::default())
    }

    pub fn open_with(root: impl Into<PathBuf>, opts: FileStoreOptions) -> Result<Self, StateError> {
        let root = root.into();
        for d in [root.join(INFRAS), root.join(NODE_DEFS)] {
            std::fs::create_dir_all(&d).map_err(|e| StateError::io("create directory", &d, &e))?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Stats::default());
        let swap = Arc::new(RwLock::new(()));
        let thread = {
            let (stats, swap) = (stats.clone(), swap.clone());
            std::thread::Builder::new()
                .name("occopus-state-writer".into())
                .spawn(move || writer::run(rx, opts, stats, swap))
                .map_err(|e| StateError::io("start writer thread for", &root, &e))?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                opts,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                stats,
                swap,
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The directory of one infrastructure (node working directories live below it).
    pub fn infra_dir(&self, id: &InfraId) -> Result<PathBuf, StateError> {
        check_id(id.as_str())?;
        Ok(self.inner.root.join(INFRAS).join(id.as_str()))
    }

    /// Writer counters so far.
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner.stats;
        StoreStats {
            syncs: s.syncs.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            compactions: s.compactions.load(Ordering::Relaxed),
        }
    }

    fn send(&self, msg: writer::Msg) -> bool {
        match self.inner.tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok()),
            Err(_) => false,
        }
    }

    /// Encode `records` and queue them for the writer; `ack` is resolved once they are
    /// durable, and `None` lets the writer sync them lazily.
    fn queue(
        &self,
        id: &InfraId,
        records: &[Record],
        ack: Option<tokio::sync::oneshot::Sender<Result<(), StateError>>>,
    ) -> Result<(), StateError> {
        let dir = self.infra_dir(id)?;
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            let (key, delete) = r.key();
            let line = encode(&dir, r)?;
            entries.push(writer::Entry { key, delete, line });
        }
        let msg = writer::Msg::Append {
            infra: id.clone(),
            dir,
            entries,
            ack,
        };
        if self.send(msg) {
            Ok(())
        } else {
            Err(StateError::WriterGone)
        }
    }

    fn load_sync(&self, id: &InfraId) -> Result<Option<InfraState>, StateError> {
        let dir = self.infra_dir(id)?;
        let Some(meta) = read_document::<InfraMeta>(&dir.join(META))? else {
            return Ok(None);
        };
        let mut replay = Replay::new(InfraState {
            meta: Some(meta),
            ..InfraState::default()
        });
        {
            let _guard = self.inner.swap.read().unwrap_or_else(|p| p.into_inner());
            journal::read(&dir, &mut |record, _| replay.apply(record))?;
        }
        let state = replay.finish();
        Ok(Some(state))
    }
}

/// Infrastructure ids name directories: keep them to a safe alphabet.
fn check_id(id: &str) -> Result<(), StateError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 128 {
        Some("it is longer than 128 characters")
    } else if id.starts_with('.') {
        Some("it starts with `.`")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("use letters, digits, `-`, `_` and `.` only")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StateError::InvalidId {
            id: id.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// File name for a node type: bytes outside `[A-Za-z0-9_.-]` are `%XX`-encoded.
fn node_type_file(node_type: &str) -> String {
    let mut s = String::with_capacity(node_type.len() + 5);
    for b in node_type.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && !s.is_empty()) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push_str(".json");
    s
}

#[derive(Serialize, Deserialize)]
struct NodeDefsDoc {
    node_type: String,
    defs: Value,
}

impl FileStore {
    /// Create infrastructure `id` in `dir` with its metadata (`doc`, written to `tmp`) and
    /// first `records`: the journal and the metadata are written and synced side by side
    /// (a sync waits for the disk, not the CPU); see [`begin_create`](Self::begin_create)
    /// and [`end_create`](Self::end_create).
    fn commit_create(
        &self,
        id: &InfraId,
        dir: &Path,
        tmp: &Path,
        doc: &[u8],
        records: &[Record],
    ) -> Result<(), StateError> {
        if dir.join(META).exists() {
            return Err(StateError::AlreadyExists(id.clone()));
        }
        std::fs::create_dir_all(dir).map_err(|e| StateError::io("create directory", dir, &e))?;
        let sync = self.inner.opts.sync;
        std::thread::scope(|s| {
            let meta = s.spawn(|| write_new(tmp, doc, sync));
            let journal = self.begin_create(id, dir, records);
            journal.and(joined(meta.join(), "write", tmp))
        })
        .and_then(|()| self.end_create(dir, tmp))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(tmp);
        })
    }

    /// Remove what builds killed before their metadata was durable left behind (no
    /// plugin was called for them): an early metadata file
    /// (`.<id>.meta.json.tmp-<pid>`) of a process that is gone, and an infrastructure
    /// directory without `meta.json` that holds nothing but records, temporary metadata
    /// and a lock file nobody holds, untouched for a minute (a build that has just made
    /// its directory has not locked it yet). Best effort: what cannot be removed stays.
    fn sweep_unfinished_creates(&self) {
        const QUIET: std::time::Duration = std::time::Duration::from_secs(60);
        let infras = self.inner.root.join(INFRAS);
        let Ok(entries) = std::fs::read_dir(&infras) else {
            return;
        };
        // Liveness of a pid is read from /proc; without it, early files are kept.
        let procfs = Path::new("/proc/self").exists();
        let old = |p: &Path| {
            p.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= QUIET)
        };
        let early = format!(".{META}.tmp-");
        let partial = format!("{META}.tmp-");
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix('.')
                .and_then(|n| n.rsplit_once(early.as_str()))
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
            {
                if procfs && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            if !e.file_type().is_ok_and(|t| t.is_dir()) || path.join(META).exists() {
                continue;
            }
            let Ok(inside) = std::fs::read_dir(&path) else {
                continue;
            };
            let only_ours = inside.filter_map(Result::ok).all(|f| {
                let n = f.file_name();
                let n = n.to_string_lossy();
                n == lock::LOCK_FILE || journal::is_record_file(&n) || n.starts_with(&partial)
            });
            let lock = path.join(lock::LOCK_FILE);
            if !only_ours || !old(&lock) {
                continue;
            }
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(&lock) else {
                continue;
            };
            if file.try_lock().is_ok() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    /// The first half of a create: refuse a taken id, remove records left without a
    /// `meta.json`, write and sync the journal (header and `records`).
    fn begin_create(&self, id: &InfraId, dir: &Path, records: &[Record]) -> Result<(), StateError> {
        if dir.join(META).exists() {
            return Err(StateError::AlreadyExists(id.clone()));
        }
        std::fs::create_dir_all(dir).map_err(|e| StateError::io("create directory", dir, &e))?;
        for stale in journal::record_files(dir) {
            std::fs::remove_file(&stale).map_err(|e| StateError::io("remove", &stale, &e))?;
        }
        let mut lines = format::Header::line("journal", 1);
        for r in records {
            lines.extend(encode(dir, r)?);
        }
        write_new(&journal::journal_path(dir, 1), &lines, self.inner.opts.sync)
    }

    /// The second half: rename the synced metadata at `tmp` into place, then sync the
    /// directory and its parent (side by side).
    fn end_create(&self, dir: &Path, tmp: &Path) -> Result<(), StateError> {
        let path = dir.join(META);
        std::fs::rename(tmp, &path).map_err(|e| StateError::io("rename", tmp, &e))?;
        if self.inner.opts.sync {
            std::thread::scope(|s| {
                let parent = s.spawn(|| match dir.parent() {
                    Some(parent) => format::sync_dir(parent),
                    None => Ok(()),
                });
                let own = format::sync_dir(dir);
                own.and(joined(parent.join(), "sync directory", dir))
            })?;
            self.inner.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The result of a helper thread doing `op` on `path`; its panic is an IO error.
fn joined<E>(
    r: Result<Result<(), StateError>, E>,
    op: &'static str,
    path: &Path,
) -> Result<(), StateError> {
    r.unwrap_or_else(|_| {
        Err(StateError::io(
            op,
            path,
            &std::io::Error::other("the thread doing it panicked"),
        ))
    })
}

/// One journal line.
fn encode(dir: &Path, r: &Record) -> Result<Vec<u8>, StateError> {
    let mut line = serde_json::to_vec(r).map_err(|e| StateError::Corrupt {
        path: dir.to_path_buf(),
        line: None,
        message: format!("cannot encode a record: {e}"),
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Write a whole file (replacing any), synced when `sync`.
fn write_new(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| StateError::io("create", path, &e))?;
    f.write_all(bytes)
        .map_err(|e| StateError::io("write", path, &e))?;
    if sync {
        f.sync_all().map_err(|e| StateError::io("sync", path, &e))?;
    }
    Ok(())
}

#[async_trait]
impl crate::StateStore for FileStore {
    async fn create_infra(&self, meta: &InfraMeta) -> Result<(), StateError> {
        self.create_infra_with(meta, &[]).await
    }

    /// The journal (header and `records`) and `meta.json` are written and synced at
    /// once, then `meta.json` is renamed into place and the directory synced: a crash
    /// leaves either both or no `meta.json`, and a directory without `meta.json` is not
    /// an infrastructure (its records, of a build that never called a plugin, are
    /// removed here when the id is created again).
    async fn create_infra_with(
        &self,
        meta: &InfraMeta,
        records: &[Record],
    ) -> Result<(), StateError> {
        let dir = self.infra_dir(&meta.infra_id)?;
        self.sweep_unfinished_creates();
        let tmp = dir.join(format!("{META}.tmp-{}", std::process::id()));
        self.commit_create(&meta.infra_id, &dir, &tmp, &document(meta)?, records)
    }

    /// The metadata is encoded, written and synced beside the infrastructure
    /// directories (`infras/.<id>.meta.tmp-<pid>`, not an infrastructure: `list` looks at
    /// directories only) while the records are made, then committed as in
    /// `create_infra_with`. Abandoned, the file is removed.
    async fn create_infra_when(
        &self,
        meta: InfraMeta,
        records: tokio::sync::oneshot::Receiver<Vec<Record>>,
    ) -> Result<(), StateError> {
        let id = meta.infra_id.clone();
        let dir = self.infra_dir(&id)?;
        self.sweep_unfinished_creates();
        let infras = self.inner.root.join(INFRAS);
        let tmp = infras.join(format!(".{id}.{META}.tmp-{}", std::process::id()));
        let sync = self.inner.opts.sync;
        let writing = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&infras)
                    .map_err(|e| StateError::io("create directory", &infras, &e))?;
                write_new(&tmp, &document(&meta)?, sync)
            })
        };
        // The journal is written and synced while the metadata may still be.
        let begun = match records.await {
            Ok(records) => self.begin_create(&id, &dir, &records),
            Err(_) => Err(StateError::Abandoned(id)),
        };
        let written = joined(writing.await.map_err(|_| ()), "write", &tmp);
        let result = begun
            .and(written)
            .and_then(|()| self.end_create(&dir, &tmp));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    async fn put_meta(&self, meta: &InfraMeta) -> Result<(), StateError> {
        let path = self.infra_dir(&meta.infra_id)?.join(META);
        if !path.exists() {
            return Err(StateError::NotFound(meta.infra_id.clone()));
        }
        write_atomic(&path, &document(meta)?, self.inner.opts.sync)
    }

    async fn load(&self, id: &InfraId) -> Result<Option<InfraState>, StateError> {
        self.load_sync(id)
    }

    fn append(&self, id: &InfraId, records: &[Record]) -> Ack {
        let (tx, ack) = Ack::channel();
        match self.queue(id, records, Some(tx)) {
            Ok(()) => ack,
            Err(e) => Ack::ready(Err(e)),
        }
    }

    fn append_unawaited(&self, id: &InfraId, records: &[Record]) {
        if let Err(e) = self.queue(id, records, None) {
            tracing::warn!(target: "occopus::state", infra = %id, "records not stored: {e}");
        }
    }

    async fn list(&self) -> Result<Vec<InfraSummary>, StateError> {
        let dir = self.inner.root.join(INFRAS);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| StateError::io("list directory", &dir, &e))?;
        let mut out = Vec::new();
        for e in entries.filter_map(Result::ok) {
            // Infrastructures are directories; other files here belong to others (the
            // local backend's loopback address leases, for one).
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path().join(META);
            if let Some(s) = read_document::<InfraSummary>(&path)? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| {
            (a.created_at_ms, a.infra_id.as_str()).cmp(&(b.created_at_ms, b.infra_id.as_str()))
        });
        Ok(out)
    }

    async fn remove(&self, id: &InfraId) -> Result<bool, StateError> {
        let dir = self.infra_dir(id)?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        if self.send(writer::Msg::Close {
            infra: id.clone(),
            done: done_tx,
        }) {
            let _ = done_rx.await;
        }
        if !dir.join(META).exists() {
            return Ok(false);
        }
        // Remove the metadata first: a crash half-way leaves a directory that is not an
        // infrastructure any more, rather than an infrastructure with missing records.
        let meta = dir.join(META);
        std::fs::remove_file(&meta).map_err(|e| StateError::io("remove", &meta, &e))?;
        let mut last = None;
        for _ in 0..3 {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(StateError::io("remove directory", &dir, &e)),
            None => Ok(true),
        }
    }

    async fn lock(
        &self,
        id: &InfraId,
        holder: &LockHolder,
        wait: Duration,
    ) -> Result<InfraLock, StateError> {
        let dir = self.infra_dir(id)?;
        lock::acquire(id, &dir, holder, wait).await
    }

    async fn put_node_defs(&self, node_type: &str, defs: &Value) -> Result<(), StateError> {
        let path = self
            .inner
            .root
            .join(NODE_DEFS)
            .join(node_type_file(node_type));
        let doc = NodeDefsDoc {
            node_type: node_type.to_string(),
            defs: defs.clone(),
        };
        write_atomic(&path, &document(&doc)?, self.inner.opts.sync)
    }

    async fn get_node_defs(&self, node_type: &str) -> Result<Option<Value>, StateError> {
        let path = self
            .inner
            .root
            .join(NODE_DEFS)
            .join(node_type_file(node_type));
        Ok(read_document::<NodeDefsDoc>(&path)?.map(|d| d.defs))
    }

    async fn list_node_defs(&self) -> Result<Vec<String>, StateError> {
        let dir = self.inner.root.join(NODE_DEFS);
        let entries =
            std::fs::read_dir(&dir).map_err(|e| StateError::io("list directory", &dir, &e))?;
        let mut out = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let is_json = e.path().extension().is_some_and(|x| x == "json");
            if is_json && let Some(d) = read_document::<NodeDefsDoc>(&e.path())? {
                out.push(d.node_type);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_type_names_are_safe_file_names() {
        assert!(check_id("0b6a-4f").is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id(".hidden").is_err());
        assert!(check_id("").is_err());
        assert_eq!(node_type_file("web_node"), "web_node.json");
        assert_eq!(node_type_file("a/b"), "a%2Fb.json");
        assert_eq!(node_type_file(".x"), "%2Ex.json");
    }
}
