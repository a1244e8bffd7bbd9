//! The one-writer lock of the file store: an OS file lock (`flock` on Unix) on
//! `infras/<id>/lock`. The holder writes its pid, command and start time inside so a second
//! writer can say who is busy. The OS drops the lock when the holder's process dies, so a
//! crashed `occopus` never blocks the next one.

use super::format::{check_format, document};
use crate::{InfraLock, LockHolder, StateError};
use occopus_model::InfraId;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(25);

/// The lock file in an infrastructure's directory.
pub(crate) const LOCK_FILE: &str = "lock";

pub(crate) async fn acquire(
    id: &InfraId,
    dir: &Path,
    holder: &LockHolder,
    wait: Duration,
) -> Result<InfraLock, StateError> {
    let path = dir.join(LOCK_FILE);
    let deadline = Instant::now() + wait;
    let mut file = loop {
        std::fs::create_dir_all(dir).map_err(|e| StateError::io("create directory", dir, &e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StateError::io("open", &path, &e))?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(StateError::Locked {
                            infra_id: id.clone(),
                            holder: describe_holder(&mut file),
                        });
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(TryLockError::Error(e)) => return Err(StateError::io("lock", &path, &e)),
            }
        }
        // The holder we waited for may have removed the infrastructure (and this lock file
        // with it) before letting go: a lock on a file that is no longer at `path` guards
        // nothing, since a newcomer would lock a fresh file there. Start again on that one.
        if still_at(&file, &path) {
            break file;
        }
    };
    let body = document(holder)?;
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| file.write_all(&body))
        .map_err(|e| StateError::io("write", &path, &e))?;
    Ok(InfraLock::new(Box::new(Held(file)), holder.clone()))
}

/// Whether `file` is the file at `path` (not one unlinked or replaced since it was opened).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere an open file cannot be removed, so it is always still there.
#[cfg(not(unix))]
fn still_at(_: &File, _: &Path) -> bool {
    true
}

/// Keeps the locked file open; closing it releases the lock.
struct Held(#[allow(dead_code)] File);

fn describe_holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    serde_json::from_str::<serde_json::Value>(&s)
        .ok()
        .filter(|v| check_format(Path::new(LOCK_FILE), None, v).is_ok())
        .and_then(|v| serde_json::from_value::<LockHolder>(v).ok())
        .map(|h| h.to_string())
        .unwrap_or_else(|| "another process (it has not written its pid yet)".into())
}
