//! Auto-restore: a workload annotated `stash.appscode.com/restorepolicy: OnRestart`
//! gets an init container that restores its directories from the latest snapshot of its
//! host every time a pod starts (the seed's "Auto Restore").
//!
//! Released Stash declined this feature because a restore on every start can overwrite
//! live data (stashed/stash#995). Here a directory is restored only when it is missing or
//! empty, so a pod that restarts on a volume that kept its data never loses what it wrote
//! since the last backup; `stash.appscode.com/restore-overwrite: "true"` restores over
//! existing files for those who want the seed's literal behaviour.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, VolumeMount};
use serde::Serialize;

use crate::{
    default_backup::flow_list,
    pod_template::{self, Slot, Support, TemplateError},
};

/// `OnRestart` asks for a restore at every start of a pod.
pub const RESTORE_POLICY: &str = "stash.appscode.com/restorepolicy";
/// The Repository (in the workload's namespace) to restore from.
pub const REPOSITORY: &str = "stash.appscode.com/repository";
/// The directories to restore: `[/a, /b]` (the seed's form) or `/a,/b`.
pub const DIRECTORIES: &str = "stash.appscode.com/directories";
/// `"true"`: restore into directories that hold data too.
pub const OVERWRITE: &str = "stash.appscode.com/restore-overwrite";

/// The only policy there is.
pub const ON_RESTART: &str = "OnRestart";

/// The init container's name.
pub const CONTAINER: &str = "stash-auto-restore";
/// Its place in the pod template, apart from a RestoreSession's `stash-init`.
pub const SLOT: Slot = Slot {
    container: CONTAINER,
    init: true,
    hash_annotation: "stash.appscode.com/last-applied-auto-restore-hash",
    tmp_volume: "stash-auto-restore-tmp-dir",
    secret_volume: "stash-auto-restore-storage-secret",
    backend_volume: "stash-auto-restore-local-backend",
};

/// Why an annotated workload gets no auto-restore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoRestoreError {
    #[error("annotation {key}: {why}")]
    Annotation { key: &'static str, why: String },
}

/// What a workload's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub repository: String,
    pub directories: Vec<String>,
    pub overwrite: bool,
}

/// The auto-restore request in `annotations`: `None` without a restore policy.
///
/// # Errors
/// An unknown policy, a missing repository or directory list, a relative directory,
/// an overwrite value that is not a boolean.
pub fn request(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Request>, AutoRestoreError> {
    let named = |k: &str| {
        annotations
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(policy) = named(RESTORE_POLICY) else {
        return Ok(None);
    };
    let bad = |key, why: String| AutoRestoreError::Annotation { key, why };
    if policy != ON_RESTART {
        return Err(bad(
            RESTORE_POLICY,
            format!("{policy:?} is not a restore policy: the one there is is {ON_RESTART:?}"),
        ));
    }
    let repository = named(REPOSITORY).ok_or_else(|| {
        bad(
            REPOSITORY,
            "not set: name the Repository to restore from".into(),
        )
    })?;
    let list = named(DIRECTORIES).ok_or_else(|| {
        bad(
            DIRECTORIES,
            "not set: list the directories to restore, as \"[/a, /b]\"".into(),
        )
    })?;
    let mut directories = flow_list(&list).map_err(|why| bad(DIRECTORIES, why))?;
    directories.dedup();
    if directories.is_empty() {
        return Err(bad(DIRECTORIES, "lists no directory".into()));
    }
    if let Some(d) = directories.iter().find(|d| !d.starts_with('/')) {
        return Err(bad(DIRECTORIES, format!("{d:?} is not an absolute path")));
    }
    let overwrite = match named(OVERWRITE).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(bad(
                OVERWRITE,
                format!("{v:?} is neither \"true\" nor \"false\""),
            ))
        }
    };
    Ok(Some(Request {
        repository,
        directories,
        overwrite,
    }))
}

/// What a directory held when the pod started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirState {
    Missing,
    /// Nothing but, at most, a file system's `lost+found`.
    Empty,
    HasData,
}

/// Whether a directory in `state` is restored.
pub fn restores(state: DirState, overwrite: bool) -> bool {
    overwrite || state != DirState::HasData
}

/// Whether a directory whose entries are `names` counts as empty: a fresh ext4 volume
/// holds `lost+found` and nothing the workload wrote.
pub fn empty_listing<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    names.into_iter().all(|n| n == "lost+found")
}

/// Everything the init container is built from (their hash decides a rollout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub request: Request,
    /// The workload's kind: the restic host of each pod follows from it.
    pub target_kind: String,
    pub image: String,
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(flatten)]
    pub support: Support,
}

/// The writable mounts the init container needs for `directories`.
pub fn mounts_for_directories(
    template: &PodTemplateSpec,
    directories: &[String],
) -> Result<Vec<VolumeMount>, TemplateError> {
    pod_template::mounts_for_directories(
        template,
        directories,
        false,
        &[
            CONTAINER,
            crate::init_container::CONTAINER,
            crate::sidecar::CONTAINER,
        ],
    )
}

/// The init container for `inputs`.
pub fn container(inputs: &Inputs) -> Container {
    let r = &inputs.request;
    let mut args = vec![
        "auto-restore".to_string(),
        format!("--repository={}", r.repository),
        format!("--target-kind={}", inputs.target_kind),
    ];
    args.extend(r.directories.iter().map(|d| format!("--directory={d}")));
    if r.overwrite {
        args.push("--overwrite".to_string());
    }
    pod_template::our_container(
        &SLOT,
        &inputs.image,
        args,
        inputs.volume_mounts.clone(),
        &inputs.support,
    )
}

/// The template with the init container for `inputs`, or `None` when it is there
/// already with the same inputs (no rollout).
pub fn inject(
    template: &PodTemplateSpec,
    inputs: &Inputs,
    claims: &[String],
) -> Result<Option<PodTemplateSpec>, TemplateError> {
    pod_template::inject(
        template,
        &SLOT,
        container(inputs),
        &inputs.support,
        pod_template::inputs_hash(inputs),
        claims,
    )
}

/// The template without the init container, or `None` when it has none.
pub fn remove(template: &PodTemplateSpec) -> Option<PodTemplateSpec> {
    pod_template::remove(template, &SLOT)
}

#[cfg(test)]
mod tests;
