//! Default backup: a target annotated with a BackupTemplate (the seed) or BackupBlueprint
//! (released Stash) gets a Repository and a BackupConfiguration made from it, in the
//! target's own namespace, named `<kind>-<name>` as released Stash names them.
//!
//! This module is the pure part: which annotations ask for what ([`request`]), and the
//! two desired objects ([`desired`]). The controller applies them, owns them by the
//! target, and deletes them when the annotation goes.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::VolumeMount, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::api::ObjectMeta;

use crate::{
    crd::{
        backup_configuration::{BackupConfiguration, BackupConfigurationSpec},
        blueprint::BackupBlueprintSpec,
        common::{BackupTarget, ObjectRef, TargetRef},
        repository::{Backend, Repository, RepositorySpec},
    },
    vars::{VarError, Vars},
};

/// The seed's annotation naming the template.
pub const TEMPLATE: &str = "stash.appscode.com/backuptemplate";
/// Released Stash's annotation naming the blueprint.
pub const BLUEPRINT: &str = "stash.appscode.com/backup-blueprint";
/// The seed's directories, written as a YAML flow list: `"[/source/data]"`.
pub const TARGET_DIRECTORIES: &str = "stash.appscode.com/targetDirectories";
/// Released Stash's directories: `"/a,/b"`.
pub const TARGET_PATHS: &str = "stash.appscode.com/target-paths";
/// Released Stash's mounts: `"volume:/mount/path[:sub/path],..."`.
pub const VOLUME_MOUNTS: &str = "stash.appscode.com/volume-mounts";
/// Released Stash's per-target schedule, over the blueprint's.
pub const SCHEDULE: &str = "stash.appscode.com/schedule";
/// On the generated objects: the template they came from.
pub const FROM_TEMPLATE: &str = "stash.appscode.com/generated-from";

/// Why an annotated target gets no default backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefaultBackupError {
    #[error("annotation {key}: {why}")]
    Annotation { key: &'static str, why: String },
    #[error("template {template:?}: {source}")]
    Vars {
        template: String,
        #[source]
        source: VarError,
    },
    #[error("template {template:?}: its backend is not valid after substitution: {why}")]
    Backend { template: String, why: String },
}

/// What a target's annotations ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub template: String,
    pub paths: Vec<String>,
    pub mounts: Vec<VolumeMount>,
    pub schedule: Option<String>,
}

/// The annotated object: what the generated objects point at and are owned by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The default-backup request in `annotations`, if any. The seed's and released
/// Stash's spellings are both read; when both name a template, the seed's wins.
///
/// # Errors
/// A template is named but the directories or mounts cannot be read.
pub fn request(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Request>, DefaultBackupError> {
    let named = |k: &str| {
        annotations
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(template) = named(TEMPLATE).or_else(|| named(BLUEPRINT)) else {
        return Ok(None);
    };
    let mut paths = match named(TARGET_DIRECTORIES) {
        Some(v) => flow_list(&v).map_err(|why| DefaultBackupError::Annotation {
            key: TARGET_DIRECTORIES,
            why,
        })?,
        None => Vec::new(),
    };
    if let Some(v) = named(TARGET_PATHS) {
        paths.extend(comma_list(&v));
    }
    paths.dedup();
    for p in &paths {
        if !p.starts_with('/') {
            return Err(DefaultBackupError::Annotation {
                key: TARGET_PATHS,
                why: format!("{p:?} is not an absolute path"),
            });
        }
    }
    let mounts = match named(VOLUME_MOUNTS) {
        Some(v) => comma_list(&v)
            .iter()
            .map(|m| mount(m))
            .collect::<Result<_, _>>()
            .map_err(|why| DefaultBackupError::Annotation {
                key: VOLUME_MOUNTS,
                why,
            })?,
        None => Vec::new(),
    };
    Ok(Some(Request {
        template,
        paths,
        mounts,
        schedule: named(SCHEDULE),
    }))
}

fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `[/a, /b]` (the seed's form), or a bare comma list.
pub(crate) fn flow_list(v: &str) -> Result<Vec<String>, String> {
    let inner = match (v.strip_prefix('['), v.strip_suffix(']')) {
        (Some(_), Some(_)) => &v[1..v.len() - 1],
        (None, None) => v,
        _ => return Err(format!("{v:?} is not a list: write \"[/a, /b]\"")),
    };
    Ok(comma_list(inner)
        .into_iter()
        .map(|s| s.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect())
}

fn mount(m: &str) -> Result<VolumeMount, String> {
    let mut parts = m.splitn(3, ':');
    let (Some(name), Some(path)) = (parts.next(), parts.next()) else {
        return Err(format!("{m:?} is not volume:/mount/path[:sub/path]"));
    };
    if name.is_empty() || !path.starts_with('/') {
        return Err(format!("{m:?} is not volume:/mount/path[:sub/path]"));
    }
    Ok(VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        sub_path: parts.next().filter(|s| !s.is_empty()).map(str::to_string),
        ..VolumeMount::default()
    })
}

/// The generated objects' name: released Stash's `<kind>-<name>`, kind in lower case.
pub fn object_name(target: &Target) -> String {
    format!("{}-{}", target.kind.to_lowercase(), target.name)
}

/// What a template's strings may name: the seed's `${target.*}` and released Stash's
/// `${TARGET_*}`.
fn target_vars(t: &Target) -> Vars {
    let kind = t.kind.to_lowercase();
    let mut v = Vars::new();
    v.set("target.namespace", &t.namespace)
        .set("target.name", &t.name)
        .set("target.kind", &kind)
        .set("TARGET_NAMESPACE", &t.namespace)
        .set("TARGET_NAME", &t.name)
        .set("TARGET_KIND", &kind)
        .set("TARGET_API_VERSION", &t.api_version);
    v
}

/// The Repository and BackupConfiguration that `template` (named `request.template`)
/// makes for `target`, owned by the target and labelled with the template's name.
///
/// # Errors
/// The backend names an unknown variable, or is no longer a backend after substitution.
pub fn desired(
    target: &Target,
    request: &Request,
    template: &BackupBlueprintSpec,
) -> Result<(Repository, BackupConfiguration), DefaultBackupError> {
    let name = object_name(target);
    let vars_err = |source| DefaultBackupError::Vars {
        template: request.template.clone(),
        source,
    };
    let backend_json =
        serde_json::to_value(&template.backend).map_err(|e| DefaultBackupError::Backend {
            template: request.template.clone(),
            why: e.to_string(),
        })?;
    let resolved = target_vars(target)
        .resolve_json("spec.backend", &backend_json)
        .map_err(vars_err)?;
    let backend: Backend =
        serde_json::from_value(resolved).map_err(|e| DefaultBackupError::Backend {
            template: request.template.clone(),
            why: e.to_string(),
        })?;
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(target.namespace.clone()),
        labels: Some(BTreeMap::from([(
            FROM_TEMPLATE.to_string(),
            request.template.clone(),
        )])),
        owner_references: Some(vec![OwnerReference {
            api_version: target.api_version.clone(),
            kind: target.kind.clone(),
            name: target.name.clone(),
            uid: target.uid.clone(),
            controller: Some(true),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    };
    let repository = Repository {
        metadata: metadata.clone(),
        spec: RepositorySpec {
            backend,
            wipe_out: template.wipe_out,
            usage_policy: template.usage_policy.clone(),
        },
        status: None,
    };
    let claim = target.kind == "PersistentVolumeClaim";
    let configuration = BackupConfiguration {
        metadata,
        spec: BackupConfigurationSpec {
            task: template.task.clone(),
            target: Some(BackupTarget {
                reference: Some(TargetRef {
                    api_version: target.api_version.clone(),
                    kind: target.kind.clone(),
                    name: target.name.clone(),
                    namespace: None,
                }),
                paths: request.paths.clone(),
                volume_mounts: request.mounts.clone(),
                // A claim is mounted where its snapshots say it was: the seed's PVC
                // flow backs up `/<claim>` unless the annotations say otherwise.
                mount_path: (claim && request.mounts.is_empty())
                    .then(|| format!("/{}", target.name)),
                ..BackupTarget::default()
            }),
            repository: ObjectRef {
                name,
                namespace: None,
            },
            schedule: request
                .schedule
                .clone()
                .or_else(|| template.schedule.clone()),
            retention_policy: template.retention_policy.clone(),
            backup_history_limit: template.backup_history_limit,
            time_out: template.time_out.clone(),
            retry_config: template.retry_config.clone(),
            temp_dir: template.temp_dir.clone(),
            runtime_settings: template.runtime_settings.clone(),
            interim_volume_template: template.interim_volume_template.clone(),
            hooks: template.hooks.clone(),
            ..BackupConfigurationSpec::default()
        },
        status: None,
    };
    Ok((repository, configuration))
}

#[cfg(test)]
mod tests;
