//! A Task made into a Job: one container per Function, in the Task's order (every step
//! but the last an init container, so each runs only after the one before it
//! succeeded), every string resolved through [`crate::vars`].
//!
//! Every container sees the same volumes: the target claim at the target's mount
//! paths, the storage Secret at [`crate::pod_template::SECRET_DIR`], one scratch emptyDir at `/tmp` (the
//! steps' hand-over place) and a `local` backend's volume. A Function that mounts a
//! volume by a name the seed's Tasks use (the storage Secret's name, the claim's name,
//! the scratch volume) gets it; any other name must come from the Task's `volumes`.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement,
            NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
            SecretVolumeSource, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::api::ObjectMeta;

use crate::{
    crd::task::{FunctionSpec, TaskSpec},
    pod_template::{downward_env, support_volumes, Slot, Support},
    vars::{VarError, Vars},
};

/// The volumes of a Job's pod that the operator provides.
pub const SLOT: Slot = Slot {
    container: "",
    init: false,
    hash_annotation: "",
    tmp_volume: "stash-tmp",
    secret_volume: "stash-secret",
    backend_volume: "stash-backend",
};
/// The target claim's volume.
pub const TARGET_VOLUME: &str = "stash-target";
/// Where the steps hand results to each other (on the scratch volume).
pub const OUTPUT_DIR: &str = "/tmp/output";
/// Scratch space of a step (released Stash's interim data directory).
pub const INTERIM_DIR: &str = "/tmp/interim";
/// The label naming the session a Job runs.
pub const SESSION_LABEL: &str = "stash.appscode.com/session";

/// Why a Task cannot be made into a Job; each names the Task, Function or volume.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Task {task:?} has no steps")]
    NoSteps { task: String },
    #[error("Task {task:?} names Function {function:?}, which does not exist")]
    NoFunction { task: String, function: String },
    #[error("Function {function:?} sets no image")]
    NoImage { function: String },
    #[error(transparent)]
    Var(#[from] VarError),
    #[error("Function {function:?}: spec.container is not a valid container: {error}")]
    BadContainer { function: String, error: String },
    #[error("Task {task:?}: spec.volumes[{index}] is not a valid volume: {error}")]
    BadVolume {
        task: String,
        index: usize,
        error: String,
    },
    #[error("Function {function:?} mounts volume {volume:?}, which neither the Task nor the operator provides")]
    UnknownVolume { function: String, volume: String },
}

/// The claim a Job backs up or restores into.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimMount {
    pub claim: String,
    /// Where the steps see it (the seed's `mountPath`, or released Stash's
    /// `volumeMounts` of the claim); their volume names are replaced by the claim's.
    pub mounts: Vec<VolumeMount>,
}

/// Everything a Job is made of.
#[derive(Debug, Clone)]
pub struct JobPlan<'a> {
    pub name: String,
    pub namespace: &'a str,
    pub session_name: &'a str,
    pub owner: Option<OwnerReference>,
    pub task_name: &'a str,
    pub task: &'a TaskSpec,
    pub functions: &'a BTreeMap<String, FunctionSpec>,
    /// The operator's facts ([`crate::vars::job_vars`]) plus the configuration's or
    /// session's own Task params.
    pub vars: &'a Vars,
    pub claim: Option<ClaimMount>,
    pub support: &'a Support,
    /// The node the claim is mounted on, for a claim only one node may mount.
    pub node: Option<String>,
    pub service_account: &'a str,
    /// `activeDeadlineSeconds`: the session's time left.
    pub deadline_seconds: Option<i64>,
}

/// The steps of a Task, in order, with their inputs, in either spelling.
fn steps(task: &TaskSpec) -> Vec<(String, Vec<(&str, &str)>)> {
    if task.functions.is_empty() {
        task.steps
            .iter()
            .map(|s| {
                let params = s
                    .params
                    .iter()
                    .map(|p| (p.name.as_str(), p.value.as_str()))
                    .collect();
                (s.name.clone(), params)
            })
            .collect()
    } else {
        task.functions
            .iter()
            .map(|f| {
                let inputs = f
                    .inputs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (f.name.clone(), inputs)
            })
            .collect()
    }
}

/// A Function's name as a container name (a DNS label): `stashPostBackup` is
/// `stash-post-backup`.
pub fn container_name(function: &str) -> String {
    let mut out = String::new();
    for c in function.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(63).collect();
    if out.is_empty() {
        "step".to_string()
    } else {
        out
    }
}

/// One step's container, resolved.
fn step_container(name: &str, f: &FunctionSpec, vars: &Vars) -> Result<Container, JobError> {
    let at = format!("Function {name}");
    let mut c = match &f.container {
        Some(seed) => {
            let value = vars.resolve_json(&format!("{at} spec.container"), seed)?;
            serde_json::from_value::<Container>(value).map_err(|e| JobError::BadContainer {
                function: name.to_string(),
                error: e.to_string(),
            })?
        }
        None => {
            let list = |field: &str, items: &[String]| -> Result<Option<Vec<String>>, VarError> {
                let out = items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| vars.resolve(&format!("{at} spec.{field}[{i}]"), s))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((!out.is_empty()).then_some(out))
            };
            let mounts = f
                .volume_mounts
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    Ok(VolumeMount {
                        name: vars
                            .resolve(&format!("{at} spec.volumeMounts[{i}].name"), &m.name)?,
                        mount_path: vars.resolve(
                            &format!("{at} spec.volumeMounts[{i}].mountPath"),
                            &m.mount_path,
                        )?,
                        ..m.clone()
                    })
                })
                .collect::<Result<Vec<_>, VarError>>()?;
            Container {
                image: f
                    .image
                    .as_deref()
                    .map(|i| vars.resolve(&format!("{at} spec.image"), i))
                    .transpose()?,
                command: list("command", &f.command)?,
                args: list("args", &f.args)?,
                working_dir: f
                    .working_dir
                    .as_deref()
                    .map(|w| vars.resolve(&format!("{at} spec.workingDir"), w))
                    .transpose()?,
                volume_mounts: (!mounts.is_empty()).then_some(mounts),
                ..Container::default()
            }
        }
    };
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(JobError::NoImage {
            function: name.to_string(),
        });
    }
    if c.name.is_empty() {
        c.name = container_name(name);
    }
    Ok(c)
}

/// Adds `extra` mounts to `c` where it has none at the same path, and the pod's
/// identity to its environment where it sets none of the same name.
fn complete(c: &mut Container, extra: &[VolumeMount]) {
    let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
    for m in extra {
        if !mounts.iter().any(|x| x.mount_path == m.mount_path) {
            mounts.push(m.clone());
        }
    }
    let env = c.env.get_or_insert_with(Vec::new);
    for e in downward_env() {
        if !env.iter().any(|x| x.name == e.name) {
            env.push(e);
        }
    }
}

fn pin_to(node: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".to_string(),
                        operator: "In".to_string(),
                        values: Some(vec![node.to_string()]),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// The Job of `plan` (see the module docs).
///
/// # Errors
/// A missing Function or image, an unresolvable variable, an invalid container or
/// volume, or a mount of a volume nobody provides.
pub fn job(plan: &JobPlan<'_>) -> Result<Job, JobError> {
    let steps = steps(plan.task);
    if steps.is_empty() {
        return Err(JobError::NoSteps {
            task: plan.task_name.to_string(),
        });
    }
    let (mut volumes, mut shared) = support_volumes(&SLOT, plan.support);
    if let Some(claim) = &plan.claim {
        volumes.push(Volume {
            name: TARGET_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.claim.clone(),
                ..PersistentVolumeClaimVolumeSource::default()
            }),
            ..Volume::default()
        });
        shared.extend(claim.mounts.iter().map(|m| VolumeMount {
            name: TARGET_VOLUME.to_string(),
            ..m.clone()
        }));
    }
    for (i, v) in plan.task.volumes.iter().enumerate() {
        let at = format!("Task {} spec.volumes[{i}]", plan.task_name);
        let v = plan.vars.resolve_json(&at, v)?;
        let v: Volume = serde_json::from_value(v).map_err(|e| JobError::BadVolume {
            task: plan.task_name.to_string(),
            index: i,
            error: e.to_string(),
        })?;
        volumes.retain(|x| x.name != v.name);
        volumes.push(v);
    }
    let mut containers = Vec::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for (name, inputs) in &steps {
        let f = plan
            .functions
            .get(name)
            .ok_or_else(|| JobError::NoFunction {
                task: plan.task_name.to_string(),
                function: name.clone(),
            })?;
        let at = format!("Task {} step {name}", plan.task_name);
        let vars = plan.vars.with_inputs(&at, inputs.iter().copied())?;
        let mut c = step_container(name, f, &vars)?;
        let n = used.entry(c.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.name = format!("{}-{n}", c.name);
        }
        complete(&mut c, &shared);
        for m in c.volume_mounts.iter().flatten() {
            if volumes.iter().any(|v| v.name == m.name) {
                continue;
            }
            let provided = if m.name == plan.support.storage_secret {
                Some(Volume {
                    name: m.name.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(plan.support.storage_secret.clone()),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                })
            } else if plan.claim.as_ref().is_some_and(|c| c.claim == m.name) {
                volumes
                    .iter()
                    .find(|v| v.name == TARGET_VOLUME)
                    .map(|v| Volume {
                        name: m.name.clone(),
                        ..v.clone()
                    })
            } else {
                None
            };
            match provided {
                Some(v) => volumes.push(v),
                None => {
                    return Err(JobError::UnknownVolume {
                        function: name.clone(),
                        volume: m.name.clone(),
                    })
                }
            }
        }
        containers.push(c);
    }
    let Some(main) = containers.pop() else {
        return Err(JobError::NoSteps {
            task: plan.task_name.to_string(),
        });
    };
    let labels = BTreeMap::from([
        (SESSION_LABEL.to_string(), plan.session_name.to_string()),
        (
            crate::rbac::MANAGED_BY.0.to_string(),
            crate::rbac::MANAGED_BY.1.to_string(),
        ),
    ]);
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            namespace: Some(plan.namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: plan.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // A failed step fails the session; the configuration's retryConfig, not
            // the Job, decides about another attempt.
            backoff_limit: Some(0),
            active_deadline_seconds: plan.deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    service_account_name: Some(plan.service_account.to_string()),
                    init_containers: (!containers.is_empty()).then_some(containers),
                    containers: vec![main],
                    volumes: Some(volumes),
                    affinity: plan.node.as_deref().map(pin_to),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// The Job's name for session `session`: the session's own when it fits a label
/// value (the Job controller labels its pods with it), else a prefix and a hash.
pub fn job_name(session: &str) -> String {
    if session.len() <= 63 {
        return session.to_string();
    }
    let hash = crate::pod_template::inputs_hash(&session);
    let keep: String = session.chars().take(46).collect();
    format!("{}-{hash}", keep.trim_end_matches(['-', '.']))
}

pub mod outcome;

#[cfg(test)]
mod tests;
