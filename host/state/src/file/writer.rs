//! The group-commit writer: one thread per store takes the records of every task that is
//! waiting, appends them to their journals, syncs each touched journal once, and then
//! acknowledges all of them. While it syncs, new records queue up and form the next group,
//! so N concurrent steps cost far fewer than N syncs.
//!
//! Records nobody waits for ([`crate::StateStore::append_unawaited`]: the engine's
//! records that a resume re-establishes, like `created` and `ready`) are written at once
//! but synced lazily: with the next group that somebody waits for on the same journal,
//! at the latest [`DEFERRED_SYNC`] later, and when the writer stops (a journal closed
//! for removal is not synced). Written data survives the process being killed; only an OS crash
//! within that window can lose it.
//!
//! The writer also keeps, per open journal, the latest line of every live key (the view)
//! so that compaction writes a snapshot without re-reading the journal.

use super::format::{Header, sync_dir};
use super::journal::{self, SNAPSHOT, journal_path};
use super::{FileStoreOptions, Stats};
use crate::StateError;
use occopus_model::InfraId;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Longest a written record nobody waits for stays unsynced.
pub(crate) const DEFERRED_SYNC: Duration = Duration::from_millis(50);

/// One record ready to write: the key it replaces, whether it deletes it, the JSON line.
pub(crate) struct Entry {
    pub key: String,
    pub delete: bool,
    pub line: Vec<u8>,
}

pub(crate) enum Msg {
    Append {
        infra: InfraId,
        dir: PathBuf,
        entries: Vec<Entry>,
        /// Who waits for the records to be durable; `None`: nobody, sync lazily.
        ack: Option<oneshot::Sender<Result<(), StateError>>>,
    },
    /// Close the journal of an infrastructure (before its directory is removed).
    Close {
        infra: InfraId,
        done: oneshot::Sender<()>,
    },
}

/// The latest line of every live key, with the order keys first appeared.
#[derive(Default)]
struct View {
    /// key -> (first-seen sequence, latest line).
    lines: HashMap<String, (u64, Vec<u8>)>,
    live_bytes: u64,
    next_seq: u64,
}

impl View {
    fn remember(&mut self, key: String, delete: bool, line: Vec<u8>) {
        if delete {
            if let Some((_, old)) = self.lines.remove(&key) {
                self.live_bytes -= old.len() as u64;
            }
            return;
        }
        let len = line.len() as u64;
        match self.lines.get_mut(&key) {
            Some((_, old)) => {
                self.live_bytes = self.live_bytes - old.len() as u64 + len;
                *old = line;
            }
            None => {
                self.lines.insert(key, (self.next_seq, line));
                self.live_bytes += len;
                self.next_seq += 1;
            }
        }
    }
}

struct Journal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    generation: u64,
    /// Bytes in the active journal.
    bytes: u64,
    view: View,
    poisoned: Option<String>,
    dirty: bool,
}

impl Journal {
    fn open(dir: PathBuf, sync: bool) -> Result<Self, StateError> {
        let mut view = View::default();
        let disk = journal::read(&dir, &mut |record, line| {
            let (key, delete) = record.key();
            view.remember(key, delete, line.to_vec());
        })?;
        for stale in journal::stale_journals(&dir, disk.generation) {
            let _ = std::fs::remove_file(stale);
        }
        let path = journal_path(&dir, disk.generation);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StateError::io("open", &path, &e))?;
        let mut bytes = disk.journal_valid_len;
        // Cut a torn tail (or a torn header) so the next append starts on a clean line.
        file.set_len(bytes)
            .and_then(|()| file.seek(SeekFrom::Start(bytes)).map(|_| ()))
            .map_err(|e| StateError::io("truncate", &path, &e))?;
        if !disk.journal_has_header {
            let h = Header::line("journal", disk.generation);
            file.write_all(&h)
                .map_err(|e| StateError::io("write", &path, &e))?;
            bytes = h.len() as u64;
            if sync {
                file.sync_all()
                    .map_err(|e| StateError::io("sync", &path, &e))?;
                sync_dir(&dir)?;
            }
        }
        Ok(Journal {
            dir,
            file,
            path,
            generation: disk.generation,
            bytes,
            view,
            poisoned: None,
            dirty: false,
        })
    }

    fn write(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        if let Some(p) = &self.poisoned {
            return Err(p.clone());
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.line.len()).sum());
        for e in &entries {
            buf.extend_from_slice(&e.line);
        }
        if let Err(e) = self.file.write_all(&buf) {
            let msg = StateError::io("append to", &self.path, &e).to_string();
            self.poisoned = Some(msg.clone());
            return Err(msg);
        }
        self.bytes += buf.len() as u64;
        self.dirty = true;
        for e in entries {
            self.view.remember(e.key, e.delete, e.line);
        }
        Ok(())
    }

    fn sync(&mut self, stats: &Stats) -> Result<(), String> {
        if let Some(p) = &self.poisoned {
            return Err(p.clone());
        }
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data().map_err(|e| {
            let msg = StateError::io("sync", &self.path, &e).to_string();
            self.poisoned = Some(msg.clone());
            msg
        })
    }

    /// Write the view as a snapshot and start the next journal generation.
    fn compact(&mut self, sync: bool, swap: &RwLock<()>) -> Result<(), StateError> {
        let next = self.generation + 1;
        let mut lines: Vec<&(u64, Vec<u8>)> = self.view.lines.values().collect();
        lines.sort_unstable_by_key(|(seq, _)| *seq);
        let mut buf = Header::line("snapshot", next);
        for (_, l) in lines {
            buf.extend_from_slice(l);
        }
        let new_path = journal_path(&self.dir, next);
        let header = Header::line("journal", next);
        // Readers take the read side, so they never see the snapshot of one generation
        // with the journal of another.
        let _guard = swap.write().unwrap_or_else(|p| p.into_inner());
        super::format::write_atomic(&self.dir.join(SNAPSHOT), &buf, sync)?;
        let mut file =
            File::create(&new_path).map_err(|e| StateError::io("create", &new_path, &e))?;
        file.write_all(&header)
            .map_err(|e| StateError::io("write", &new_path, &e))?;
        if sync {
            file.sync_all()
                .map_err(|e| StateError::io("sync", &new_path, &e))?;
            sync_dir(&self.dir)?;
        }
        let old = std::mem::replace(&mut self.path, new_path);
        let _ = std::fs::remove_file(old);
        self.file = file;
        self.generation = next;
        self.bytes = header.len() as u64;
        // The snapshot holds every line, unsynced ones included.
        self.dirty = !sync;
        Ok(())
    }
}

/// A caller waiting for its records: the infrastructure written (if the write went
/// through), its ack, and an error found before syncing.
type Waiting = (
    Option<InfraId>,
    Option<oneshot::Sender<Result<(), StateError>>>,
    Option<StateError>,
);

/// The writer thread's loop.
pub(crate) fn run(
    rx: Receiver<Msg>,
    opts: FileStoreOptions,
    stats: Arc<Stats>,
    swap: Arc<RwLock<()>>,
) {
    let mut journals: HashMap<InfraId, Journal> = HashMap::new();
    // When the oldest written-but-unsynced record nobody waits for was written.
    let mut deferred_since: Option<Instant> = None;
    loop {
        let first = match deferred_since {
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
            Some(since) => match rx.recv_timeout(DEFERRED_SYNC.saturating_sub(since.elapsed())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    sync_dirty(&mut journals, &stats);
                    deferred_since = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut acks: Vec<Waiting> = Vec::with_capacity(batch.len());
        let mut touched: Vec<InfraId> = Vec::new();
        let mut closes = Vec::new();
        for msg in batch {
            match msg {
                Msg::Append {
                    infra,
                    dir,
                    entries,
                    ack,
                } => {
                    stats
                        .records
                        .fetch_add(entries.len() as u64, Ordering::Relaxed);
                    let j = match journals.get_mut(&infra) {
                        Some(j) => j,
                        None => match open_for(&infra, dir, opts.sync) {
                            Ok(j) => journals.entry(infra.clone()).or_insert(j),
                            Err(e) => {
                                acks.push((None, ack, Some(e)));
                                continue;
                            }
                        },
                    };
                    match j.write(entries) {
                        Ok(()) => {
                            // Nobody waits: the sync can wait.
                            if ack.is_none() {
                                deferred_since.get_or_insert_with(Instant::now);
                            } else if !touched.contains(&infra) {
                                touched.push(infra.clone());
                            }
                            acks.push((Some(infra), ack, None));
                        }
                        Err(cause) => acks.push((
                            None,
                            ack,
                            Some(StateError::Poisoned {
                                infra_id: infra,
                                cause,
                            }),
                        )),
                    }
                }
                Msg::Close { infra, done } => closes.push((infra, done)),
            }
        }
        let mut failed: HashMap<InfraId, String> = HashMap::new();
        for id in &touched {
            if let Some(j) = journals.get_mut(id)
                && let Err(cause) = j.sync(&stats)
            {
                failed.insert(id.clone(), cause);
            }
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        for (infra, ack, err) in acks {
            let result = match (err, infra) {
                (Some(e), _) => Err(e),
                (None, Some(id)) => match failed.get(&id) {
                    Some(cause) => Err(StateError::Poisoned {
                        infra_id: id,
                        cause: cause.clone(),
                    }),
                    None => Ok(()),
                },
                (None, None) => Ok(()),
            };
            if let Some(ack) = ack {
                let _ = ack.send(result);
            }
        }
        for id in &touched {
            if let Some(j) = journals.get_mut(id) {
                let threshold = opts.compact_min_bytes.max(2 * j.view.live_bytes);
                if j.poisoned.is_none() && j.bytes > threshold {
                    match j.compact(opts.sync, &swap) {
                        Ok(()) => {
                            stats.compactions.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => j.poisoned = Some(e.to_string()),
                    }
                }
            }
        }
        if deferred_since.is_some_and(|t| t.elapsed() >= DEFERRED_SYNC) {
            sync_dirty(&mut journals, &stats);
            deferred_since = None;
        }
        for (infra, done) in closes {
            // Closed before its directory is removed: nothing of it needs a sync.
            journals.remove(&infra);
            let _ = done.send(());
        }
    }
    sync_dirty(&mut journals, &stats);
}

/// Sync every journal with written but unsynced records (a failure poisons it).
fn sync_dirty(journals: &mut HashMap<InfraId, Journal>, stats: &Stats) {
    for j in journals.values_mut() {
        let _ = j.sync(stats);
    }
}

fn open_for(infra: &InfraId, dir: PathBuf, sync: bool) -> Result<Journal, StateError> {
    if !dir.join(super::META).exists() {
        return Err(StateError::NotFound(infra.clone()));
    }
    Journal::open(dir, sync)
}
