//! What the processes in users' pods (the backup sidecar, the restore init container)
//! share: their error type, who they are, opening the Repository with the mounted
//! storage Secret, and status writes that several writers make to one session.

use std::path::{Path, PathBuf};

use kube::{api::PostParams, core::object::HasStatus, Api, Client, Resource};
use serde::{de::DeserializeOwned, Serialize};
use stash_agent::{
    backend::{open_location_with, OpenOptions},
    repository::{self, InitOptions, Repository as Engine},
};
use stash_repo_format::compress::Mode;

use crate::{
    crd::{common::TargetRef, repository::Repository},
    host::{host_name, TargetKind},
    location::engine_location,
};

/// Why a process in a pod could not do its work; each names the object or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Engine(#[from] stash_agent::Error),
    #[error("{0}")]
    Config(String),
    /// The Repository's location holds no repository yet (nothing was backed up).
    #[error("Repository {repository:?}: there is no repository at {location}")]
    NoRepository {
        repository: String,
        location: String,
    },
}

/// Which pod this process runs in.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// The storage Secret, mounted as files.
    pub secret_dir: PathBuf,
    pub compression: Mode,
    /// Where to push this host's result, if anywhere (`--metrics.*`).
    pub metrics: Option<crate::push::Pushgateway>,
}

impl Pod {
    /// This pod's restic host for a target (Stash's names: `host-0`, `host-<ordinal>`,
    /// the node name).
    ///
    /// # Errors
    /// An unknown kind, a StatefulSet pod name without ordinal, a DaemonSet pod without
    /// node name.
    pub fn host(
        &self,
        target: Option<&TargetRef>,
        alias: Option<&str>,
    ) -> Result<String, RunnerError> {
        let kind: TargetKind = target
            .map(|r| r.kind.as_str())
            .unwrap_or("Deployment")
            .parse()
            .map_err(|e: crate::host::HostError| RunnerError::Config(e.to_string()))?;
        host_name(kind, alias, &self.name, &self.node)
            .map_err(|e| RunnerError::Config(e.to_string()))
    }
}

/// Opens the repository of Repository `name` with the Secret mounted at `secret_dir`;
/// a missing repository is initialized when `create` (a first backup), an error else.
/// Locks left by this container's killed predecessors are removed.
///
/// # Errors
/// The Repository is missing or invalid, the Secret has no password, or the engine
/// cannot open the repository (wrong password, unreachable backend).
pub async fn open_repository(
    client: &Client,
    pod: &Pod,
    name: &str,
    create: bool,
) -> Result<(Engine, Repository), RunnerError> {
    let repo = Api::<Repository>::namespaced(client.clone(), &pod.namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| {
            RunnerError::Config(format!(
                "Repository {name:?} not found in namespace {:?}",
                pod.namespace
            ))
        })?;
    let location = engine_location(&repo.spec)
        .map_err(|e| RunnerError::Config(format!("Repository {name:?}: {e}")))?;
    let password = password(&pod.secret_dir)?;
    let open = OpenOptions {
        secret_dir: Some(pod.secret_dir.clone()),
        defaults: location.defaults.clone(),
        ..OpenOptions::default()
    };
    let backend = open_location_with(&location.location, create, &open)?;
    let pw = password.as_bytes();
    let engine = match repository::open(backend.clone(), pw).await {
        Ok(engine) => engine,
        Err(stash_agent::Error::NoRepository(_)) if create => {
            eprintln!("initializing repository {}", location.location);
            let opts = InitOptions {
                version: 2,
                fastcdc: false,
                kdf: None,
                chunker_of: None,
            };
            match repository::init(backend.clone(), pw, opts).await {
                Ok(engine) => engine,
                // Another host's process initialized it at the same moment: use theirs.
                Err(stash_agent::Error::AlreadyInitialized(_)) => {
                    repository::open(backend, pw).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(stash_agent::Error::NoRepository(_)) => {
            return Err(RunnerError::NoRepository {
                repository: name.to_string(),
                location: location.location.to_string(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    // A container killed mid-backup leaves its lock, which would hold off every
    // retention run (an exclusive lock) for 30 minutes; its restart knows it is dead.
    for lock in engine.remove_dead_locks().await? {
        eprintln!("removed the lock of a process that no longer runs: {lock}");
    }
    Ok((engine.with_compression(pod.compression), repo))
}

fn password(secret_dir: &Path) -> Result<String, RunnerError> {
    let secrets = stash_agent::backend::secret_dir::read(secret_dir)?;
    secrets.password().map(str::to_string).ok_or_else(|| {
        RunnerError::Config(format!(
            "the storage Secret (at {}) has no RESTIC_PASSWORD",
            secret_dir.display()
        ))
    })
}

/// How long an operation waits for another host's lock before it fails: the sidecars of
/// a StatefulSet or DaemonSet back up into one repository at once, and each one's
/// retention (an exclusive lock) meets the others' backups (shared locks).
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `op` again while it fails because the repository is locked by another
/// process, backing off from 1 s to 15 s, for at most [`LOCK_WAIT`] (restic's
/// `--retry-lock`).
///
/// # Errors
/// `op`'s last error.
pub async fn retry_locked<T, F, Fut>(mut op: F) -> Result<T, stash_agent::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, stash_agent::Error>>,
{
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        match op().await {
            Err(stash_agent::Error::Locked(who)) if start.elapsed() + delay < LOCK_WAIT => {
                eprintln!("repository is locked ({who}); trying again in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(15));
            }
            other => return other,
        }
    }
}

/// Re-reads `name`'s status and writes `edit`'s change under optimistic concurrency,
/// retrying on conflicts; returns `edit`'s verdict (`None`: nothing to write).
///
/// # Errors
/// API errors, or a status that kept changing over twenty attempts.
pub async fn update_status<K, T>(
    api: &Api<K>,
    name: &str,
    mut edit: impl FnMut(&mut K::Status) -> Option<T>,
) -> Result<Option<T>, RunnerError>
where
    K: Resource<DynamicType = ()>
        + HasStatus
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::Status: Clone + Default,
{
    for _ in 0..20 {
        let mut object = api.get_status(name).await?;
        let mut status = object.status().cloned().unwrap_or_default();
        let Some(verdict) = edit(&mut status) else {
            return Ok(None);
        };
        *object.status_mut() = Some(status);
        object.meta_mut().managed_fields = None;
        match api
            .replace_status(name, &PostParams::default(), &object)
            .await
        {
            Ok(_) => return Ok(Some(verdict)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RunnerError::Config(format!(
        "{} {name:?}: status kept changing under us",
        K::kind(&())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_held_elsewhere_is_waited_for_and_other_errors_are_not() {
        let mut calls = 0;
        let got = retry_locked(|| {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(stash_agent::Error::Locked(
                        "exclusive lock of host-1".into(),
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), 2);
        let mut calls = 0;
        let got: Result<(), _> = retry_locked(|| {
            calls += 1;
            async { Err(stash_agent::Error::WrongPassword) }
        })
        .await;
        assert!(matches!(got, Err(stash_agent::Error::WrongPassword)));
        assert_eq!(calls, 1);
    }
}
