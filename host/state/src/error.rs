//! Errors of the state stores. Every variant is `Clone` (one write failure is reported to
//! every caller waiting on the same group commit) and names the file or infrastructure.

use occopus_model::InfraId;
use std::path::PathBuf;

/// A state store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A file operation failed.
    #[error("state: cannot {op} `{}`: {message}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        message: String,
    },
    /// A complete line or file is not what this version writes.
    #[error("state: `{}`{}: {message}; the file is damaged (restore it from a backup or remove the infrastructure's directory)", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A file written by another (newer) version of Occopus.
    #[error("state: `{}` has format {found}, but this version of Occopus reads format {supported} only; use the Occopus version that wrote it", path.display())]
    UnknownFormat {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    /// The infrastructure is not in the store.
    #[error("infrastructure `{0}` is not known to the state store")]
    NotFound(InfraId),
    /// `create_infra` for an id that is taken.
    #[error("infrastructure `{0}` already exists in the state store")]
    AlreadyExists(InfraId),
    /// Another writer holds the infrastructure's lock.
    #[error("infrastructure {infra_id} is being changed by {holder}")]
    Locked { infra_id: InfraId, holder: String },
    /// An earlier write to this infrastructure's journal failed; later records are refused
    /// so the journal never has holes.
    #[error(
        "state: writes to infrastructure `{infra_id}` stopped after an earlier failure: {cause}"
    )]
    Poisoned { infra_id: InfraId, cause: String },
    /// An infrastructure id that cannot name a directory.
    #[error("`{id}` cannot be used as an infrastructure id: {reason}")]
    InvalidId { id: String, reason: &'static str },
    /// The background writer is gone (the store was dropped or its thread panicked).
    #[error("state: the journal writer has stopped")]
    WriterGone,
    /// A create whose first records never came (the build stopped before it started
    /// anything); nothing was created.
    #[error("infrastructure `{0}` was not created: its build stopped first")]
    Abandoned(InfraId),
}

impl StateError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, e: &std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            message: e.to_string(),
        }
    }
}
