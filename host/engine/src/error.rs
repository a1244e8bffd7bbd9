//! Errors of the engine. A failed build says what failed (node, instance), why (the
//! plugin's message), and what was done about it (rolled back N instances, or kept them).

use occopus_model::{InfraId, NodeId, NodeName};
use occopus_state::StateError;
use std::fmt;

/// Errors of `plan`, `destroy`, `status` and of a build before it touched anything.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The description cannot be executed (a cycle, a type no plugin handles, ...).
    #[error("{0}")]
    Invalid(String),
    /// The infrastructure is not in the state store.
    #[error(
        "infrastructure `{0}` is not known to this state store (list them with `occopus status`)"
    )]
    NotFound(InfraId),
    /// Some instances could not be dropped; the state keeps them so a retry can finish.
    #[error("could not drop {} instance(s) of infrastructure `{infra_id}`: {}; run destroy again to retry", failures.len(), list_failures(failures))]
    DropFailed {
        infra_id: InfraId,
        failures: Vec<NodeFailure>,
    },
}

/// One instance that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeFailure {
    pub node: NodeName,
    pub node_id: NodeId,
    pub message: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` (instance {}): {}",
            self.node, self.node_id, self.message
        )
    }
}

fn list_failures(f: &[NodeFailure]) -> String {
    const SHOWN: usize = 3;
    let mut s: Vec<String> = f.iter().take(SHOWN).map(ToString::to_string).collect();
    if f.len() > SHOWN {
        s.push(format!("and {} more", f.len() - SHOWN));
    }
    s.join("; ")
}

/// What a failed build did with what it had created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "after", rename_all = "snake_case")]
pub enum AfterFailure {
    /// The build failed before creating anything.
    NothingCreated,
    /// Everything this build created was dropped (`leaked`: drops that failed too).
    RolledBack {
        dropped: usize,
        leaked: Vec<NodeFailure>,
    },
    /// `keep_on_failure`: what this build created is still there.
    Kept { instances: usize },
}

/// A failed `build`.
#[derive(Debug)]
pub struct BuildError {
    /// The infrastructure (`None` if the build failed before choosing one).
    pub infra_id: Option<InfraId>,
    pub name: String,
    /// A failure of the engine itself (state, lock, invalid description), if that is
    /// what stopped the build.
    pub cause: Option<EngineError>,
    /// Instances that failed.
    pub failures: Vec<NodeFailure>,
    /// Nodes not attempted because a node they depend on failed.
    pub skipped: Vec<NodeName>,
    /// Other nodes not started because the build stopped.
    pub not_started: Vec<NodeName>,
    pub after: AfterFailure,
}

impl BuildError {
    pub(crate) fn engine(infra_id: Option<InfraId>, name: &str, cause: EngineError) -> Self {
        Self {
            infra_id,
            name: name.into(),
            cause: Some(cause),
            failures: Vec::new(),
            skipped: Vec::new(),
            not_started: Vec::new(),
            after: AfterFailure::NothingCreated,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "build of `{}`", self.name)?;
        if let Some(id) = &self.infra_id {
            write!(f, " (infrastructure {id})")?;
        }
        write!(f, " failed: ")?;
        if let Some(c) = &self.cause {
            write!(f, "{c}")?;
        }
        if !self.failures.is_empty() {
            if self.cause.is_some() {
                write!(f, "; ")?;
            }
            write!(f, "{}", list_failures(&self.failures))?;
        }
        // Up to a screenful of names; the rest as a count (the events name every one).
        let names = |v: &[NodeName]| {
            const SHOWN: usize = 10;
            let mut s = v
                .iter()
                .take(SHOWN)
                .map(NodeName::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if v.len() > SHOWN {
                s.push_str(&format!(" and {} more", v.len() - SHOWN));
            }
            s
        };
        if !self.skipped.is_empty() {
            write!(
                f,
                ". Not attempted because a node they depend on failed: {}",
                names(&self.skipped)
            )?;
        }
        if !self.not_started.is_empty() {
            write!(
                f,
                ". Not started because the build stopped: {}",
                names(&self.not_started)
            )?;
        }
        match &self.after {
            AfterFailure::NothingCreated => Ok(()),
            AfterFailure::RolledBack { dropped, leaked } if leaked.is_empty() => write!(
                f,
                ". Rolled back: dropped the {dropped} instance(s) this build created"
            ),
            AfterFailure::RolledBack { dropped, leaked } => write!(
                f,
                ". Rollback dropped {dropped} instance(s) but could not drop {}: {}; they stay in the state, run destroy to retry",
                leaked.len(),
                list_failures(leaked)
            ),
            AfterFailure::Kept { instances } => {
                write!(
                    f,
                    ". Kept the {instances} instance(s) this build created (keep on failure)"
                )?;
                if let Some(id) = &self.infra_id {
                    write!(
                        f,
                        "; fix the cause and build again with `-i {id}`, or destroy it"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_of_skipped_and_unstarted_nodes_are_cut_to_a_count() {
        let names = |n: usize| -> Vec<NodeName> {
            (0..n)
                .map(|i| NodeName::new_unchecked(format!("n{i}")))
                .collect()
        };
        let e = BuildError {
            infra_id: None,
            name: "big".into(),
            cause: None,
            failures: Vec::new(),
            skipped: names(999),
            not_started: names(3),
            after: AfterFailure::NothingCreated,
        };
        let text = e.to_string();
        assert!(
            text.contains("failed: n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 989 more."),
            "{text}"
        );
        assert!(text.contains("the build stopped: n0, n1, n2"), "{text}");
        assert!(text.len() < 300, "{text}");
    }
}
