//! An infrastructure's record files: `snapshot.jsonl` (compacted, written atomically) and
//! `journal-<gen>.jsonl` (append-only since that snapshot). Reading replays the snapshot,
//! then the journal whose generation the snapshot names; older journals are leftovers of a
//! compaction interrupted after its snapshot was in place, and are ignored.

use super::format::{parse_lines, read_optional};
use crate::{Record, StateError};
use std::path::{Path, PathBuf};

pub(crate) const SNAPSHOT: &str = "snapshot.jsonl";

pub(crate) fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal-{generation}.jsonl"))
}

/// The generation in a journal file name, if it is one.
pub(crate) fn journal_gen(name: &str) -> Option<u64> {
    name.strip_prefix("journal-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Where the active journal stands.
pub(crate) struct OnDisk {
    /// Generation of the active journal.
    pub generation: u64,
    /// Length of the journal's good prefix (0 if it has no header yet).
    pub journal_valid_len: u64,
    pub journal_has_header: bool,
}

/// Replay the snapshot, then the active journal, handing every record (with its line) to
/// `on_record` in order.
pub(crate) fn read(
    dir: &Path,
    on_record: &mut dyn FnMut(Record, &[u8]),
) -> Result<OnDisk, StateError> {
    let snap_path = dir.join(SNAPSHOT);
    let generation = match read_optional(&snap_path)? {
        Some(bytes) => match parse_lines(&snap_path, &bytes, "snapshot", None, false, on_record)? {
            Some(f) => f.header.generation,
            None => {
                return Err(StateError::Corrupt {
                    path: snap_path,
                    line: None,
                    message: "empty snapshot".into(),
                });
            }
        },
        None => 1,
    };
    let jpath = journal_path(dir, generation);
    let mut out = OnDisk {
        generation,
        journal_valid_len: 0,
        journal_has_header: false,
    };
    if let Some(bytes) = read_optional(&jpath)?
        && let Some(f) = parse_lines(&jpath, &bytes, "journal", Some(generation), true, on_record)?
    {
        out.journal_valid_len = f.valid_len;
        out.journal_has_header = true;
    }
    Ok(out)
}

/// Files in `dir` whose names pass `keep`.
fn files_named(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .collect()
}

/// Every record file in `dir`: the snapshot and all journals.
pub(crate) fn record_files(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, is_record_file)
}

/// Whether a file of that name holds records (the snapshot or a journal).
pub(crate) fn is_record_file(name: &str) -> bool {
    name == SNAPSHOT || journal_gen(name).is_some()
}

/// Journals older than `generation` (left by an interrupted compaction).
pub(crate) fn stale_journals(dir: &Path, generation: u64) -> Vec<PathBuf> {
    files_named(dir, |n| journal_gen(n).is_some_and(|g| g < generation))
}
