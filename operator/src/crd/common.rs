//! Sub-types shared by several kinds: references, retention, the task reference, temp
//! dir and retry settings, per-host rules, and the schema helpers for fields we keep
//! as free-form JSON.
//!
//! Both spellings users write are fields here: the seed design's (`directories`,
//! `mountPath`, `task.inputs`, `rules[].hosts`) and released Stash's (`paths`,
//! `volumeMounts`, `task.params`, `rules[].targetHosts`); [`crate::canonical`] rewrites
//! the first as the second.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::VolumeMount;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// A JSON object the API server keeps as written: Kubernetes types whose full schema
/// would bloat every CRD (pod runtime settings, hooks, claim templates), checked when
/// the operator uses them.
pub(crate) fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of such objects.
pub(crate) fn any_objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// An integer or a string (the seed's `observedGeneration: 239844#2`).
pub(crate) fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"x-kubernetes-int-or-string": true})
}

/// A reference by name in the referrer's namespace. `namespace` is accepted because
/// released manifests carry it, and refused unless it is the referrer's own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ObjectRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The object a configuration backs up or a session restores into.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A `name: value` input of a Task or Function.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// Which Task runs a Job-model backup or restore, with its inputs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TaskRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Released Stash's inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// The seed's inputs, a map.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The seed's `task.database` of `pgBackup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// restic's `forget --keep-*` policy, applied per host after each backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Required by released Stash's schema, absent from the seed's samples; the
    /// operator names a nameless policy after what it keeps (`keep-last-5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
    #[serde(default)]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The emptyDir the sidecar or Job works in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_caching: bool,
}

/// How often a failed session is retried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    #[serde(default)]
    pub max_retry: i32,
    /// A duration such as `30s` or `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// What a backup covers: a workload's directories, a claim, a database's AppBinding,
/// or nothing (a cluster backup).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// Prefix of the restic host name (released Stash's rule, [`crate::host`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<TargetRef>,
    /// Released Stash's directories; one snapshot each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The seed's name for `paths`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// The seed's mount point of a PVC target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_class_name: Option<String>,
    /// restic `--exclude` patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl BackupTarget {
    /// The directories to back up, in either spelling. The design's, when present, is
    /// the newest word: the operator removes it when it writes `paths` back, so it is
    /// there only if the user applied it since.
    pub fn directories(&self) -> &[String] {
        if self.directories.is_empty() {
            &self.paths
        } else {
            &self.directories
        }
    }
}

/// Where a Job sees a claim target: the seed's `mountPath`, else released Stash's
/// `volumeMounts` (their volume names stand for the claim); empty when neither is set.
fn claim_mounts(mount_path: Option<&str>, volume_mounts: &[VolumeMount]) -> Vec<VolumeMount> {
    match mount_path.filter(|p| !p.trim().is_empty()) {
        Some(path) => vec![VolumeMount {
            name: "target".to_string(),
            mount_path: path.to_string(),
            ..VolumeMount::default()
        }],
        None => volume_mounts.to_vec(),
    }
}

impl BackupTarget {
    /// Where a backup Job mounts the claim.
    pub fn claim_mounts(&self) -> Vec<VolumeMount> {
        claim_mounts(self.mount_path.as_deref(), &self.volume_mounts)
    }

    /// What a backup Job backs up of a claim: the directories when given, else the
    /// whole claim where it is mounted.
    pub fn claim_paths(&self) -> Vec<String> {
        if self.directories().is_empty() {
            self.claim_mounts()
                .into_iter()
                .map(|m| m.mount_path)
                .collect()
        } else {
            self.directories().to_vec()
        }
    }
}

impl RestoreTarget {
    /// Where a restore Job mounts the claim.
    pub fn claim_mounts(&self) -> Vec<VolumeMount> {
        claim_mounts(self.mount_path.as_deref(), &self.volume_mounts)
    }
}

/// Which snapshots a restoring host takes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Hosts the rule is for; empty means every host without a rule of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_hosts: Vec<String>,
    /// The seed's (stash PR #647) name for `targetHosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The host whose snapshots are restored; the restoring host by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    /// Snapshot names (`<repository>-<short id>`) or ids; exclusive with `paths`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// Directories whose latest snapshot is restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Where a restore writes: a workload (init container) or a claim (Job).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<TargetRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// The seed's mount point of a PVC target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// The seed's directories to restore (released Stash: `rules[].paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_objects")]
    pub volume_claim_templates: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}
