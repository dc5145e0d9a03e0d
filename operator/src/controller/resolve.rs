//! Resolving what a BackupConfiguration or RestoreSession refers to (its Repository,
//! the storage Secret, the target workload, a configuration's schedule), each in the
//! resource's own namespace, into one condition per reference. A reference to another
//! namespace is refused, never followed.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::{Api, Client};

use super::workload::Workload;
use crate::{
    conditions::Check,
    crd::{
        app_binding::AppBinding,
        backup_configuration::BackupConfiguration,
        common::{ObjectRef, TargetRef},
        repository::Repository,
    },
    host::TargetKind,
    location::{engine_location, EngineLocation},
    schedule::Schedule,
};

pub const REPOSITORY_FOUND: &str = "RepositoryFound";
pub const SECRET_FOUND: &str = "BackendSecretFound";
pub const TARGET_FOUND: &str = "BackupTargetFound";
pub const RESTORE_TARGET_FOUND: &str = "RestoreTargetFound";
pub const SCHEDULE_VALID: &str = "ScheduleValid";
pub const TIMEOUT_VALID: &str = "TimeOutValid";
pub const SIDECAR_INJECTED: &str = "StashSidecarInjected";

/// What a configuration's references resolved to, and a condition for each.
#[derive(Debug, Default)]
pub struct Resolved {
    pub checks: Vec<Check>,
    pub repository: Option<Repository>,
    pub location: Option<EngineLocation>,
    pub secret: Option<String>,
    pub kind: Option<TargetKind>,
    pub workload: Option<Workload>,
    /// A claim target (the Job model).
    pub claim: Option<PersistentVolumeClaim>,
    /// A database target (the Job model).
    pub app_binding: Option<AppBinding>,
    pub schedule: Option<Schedule>,
}

impl Resolved {
    /// Whether every reference resolved.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The first failure's message.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.ok)
    }
}

/// What a resource refers to, and how its conditions name things.
#[derive(Debug, Clone, Copy)]
pub struct Refs<'a> {
    /// The referring kind, for messages.
    pub kind: &'static str,
    pub namespace: &'a str,
    pub repository: &'a ObjectRef,
    pub target: Option<&'a TargetRef>,
    /// The condition type of the target's check.
    pub target_condition: &'static str,
    /// Why a missing `target.ref` is refused; `None`: it is a cluster backup.
    pub no_target: Option<&'static str>,
}

impl Refs<'_> {
    /// The refusal of a reference to `what` in namespace `other`.
    fn cross_namespace(&self, what: &str, other: &str) -> String {
        format!(
            "{what} is in namespace {other:?}, not the {}'s own {:?}: references to other namespaces are refused",
            self.kind, self.namespace
        )
    }
}

/// The namespace a reference names when it is not `own` (an empty one is `own`).
pub fn other_namespace<'a>(named: Option<&'a str>, own: &str) -> Option<&'a str> {
    named.filter(|o| !o.is_empty() && *o != own)
}

/// Resolves `bc`'s references and schedule (see the module docs).
///
/// # Errors
/// API errors other than not-found, which become conditions.
pub async fn resolve(client: &Client, bc: &BackupConfiguration) -> Result<Resolved, super::Error> {
    let ns = super::meta::namespace(bc)?;
    let refs = Refs {
        kind: "BackupConfiguration",
        namespace: &ns,
        repository: &bc.spec.repository,
        target: bc.spec.target.as_ref().and_then(|t| t.reference.as_ref()),
        target_condition: TARGET_FOUND,
        no_target: match bc.spec.task.as_ref().and_then(|t| t.name.as_deref()) {
            Some(n) if !n.trim().is_empty() => None,
            _ => Some("spec.target.ref is not set: a cluster backup names its Task (task.name: clusterBackup)"),
        },
    };
    let mut r = resolve_refs(client, &refs).await?;
    r.checks.push(
        match bc.spec.schedule.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Check::ok(
                SCHEDULE_VALID,
                "NoSchedule",
                "no schedule: sessions are created by hand",
            ),
            Some(text) => match text.parse::<Schedule>() {
                Ok(s) => {
                    r.schedule = Some(s);
                    Check::ok(
                        SCHEDULE_VALID,
                        "Valid",
                        format!("schedule {text:?} is valid"),
                    )
                }
                Err(e) => Check::failed(SCHEDULE_VALID, "Invalid", e.to_string()),
            },
        },
    );
    if let Some(check) = timeout_check(bc.spec.time_out.as_deref()) {
        r.checks.push(check);
    }
    Ok(r)
}

/// The [`TIMEOUT_VALID`] condition of a `timeOut` that is set.
pub fn timeout_check(text: Option<&str>) -> Option<Check> {
    text.filter(|t| !t.trim().is_empty())?;
    Some(match crate::session::timeout(text) {
        Ok(d) => Check::ok(
            TIMEOUT_VALID,
            "Valid",
            format!(
                "sessions time out after {}",
                crate::session::duration_text(d)
            ),
        ),
        Err(e) => Check::failed(TIMEOUT_VALID, "Invalid", e),
    })
}

/// Resolves the Repository, its Secret and the target of `refs`.
///
/// # Errors
/// API errors other than not-found, which become conditions.
pub async fn resolve_refs(client: &Client, refs: &Refs<'_>) -> Result<Resolved, kube::Error> {
    let mut r = Resolved::default();
    resolve_repository(client, refs, &mut r).await?;
    resolve_target(client, refs, &mut r).await?;
    Ok(r)
}

async fn resolve_repository(
    client: &Client,
    refs: &Refs<'_>,
    r: &mut Resolved,
) -> Result<(), kube::Error> {
    let (reference, ns) = (refs.repository, refs.namespace);
    if let Some(other) = other_namespace(reference.namespace.as_deref(), ns) {
        r.checks.push(Check::failed(
            REPOSITORY_FOUND,
            "CrossNamespace",
            refs.cross_namespace(&format!("Repository {:?}", reference.name), other),
        ));
        return Ok(());
    }
    let Some(repo) = Api::<Repository>::namespaced(client.clone(), ns)
        .get_opt(&reference.name)
        .await?
    else {
        r.checks.push(Check::failed(
            REPOSITORY_FOUND,
            "NotFound",
            format!(
                "Repository {:?} not found in namespace {ns:?}",
                reference.name
            ),
        ));
        return Ok(());
    };
    match engine_location(&repo.spec) {
        Ok(l) => {
            r.checks.push(Check::ok(
                REPOSITORY_FOUND,
                "Found",
                format!("Repository {:?} at {}", reference.name, l.location),
            ));
            r.location = Some(l);
        }
        Err(e) => r.checks.push(Check::failed(
            REPOSITORY_FOUND,
            "InvalidBackend",
            format!("Repository {:?}: {e}", reference.name),
        )),
    }
    let secret = repo
        .spec
        .backend
        .storage_secret_name
        .clone()
        .filter(|s| !s.is_empty());
    r.repository = Some(repo);
    let Some(secret) = secret else {
        r.checks.push(Check::failed(
            SECRET_FOUND,
            "NotSet",
            format!(
                "Repository {:?} sets no spec.backend.storageSecretName",
                reference.name
            ),
        ));
        return Ok(());
    };
    let found = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&secret)
        .await?;
    let has_password = found.as_ref().is_some_and(|s| {
        s.data
            .as_ref()
            .is_some_and(|d| d.contains_key("RESTIC_PASSWORD"))
            || s.string_data
                .as_ref()
                .is_some_and(|d| d.contains_key("RESTIC_PASSWORD"))
    });
    r.checks.push(match (found.is_some(), has_password) {
        (false, _) => Check::failed(
            SECRET_FOUND,
            "NotFound",
            format!("Secret {secret:?} (storage Secret of Repository {:?}) not found in namespace {ns:?}", reference.name),
        ),
        (true, false) => Check::failed(
            SECRET_FOUND,
            "MissingKey",
            format!("Secret {secret:?} has no RESTIC_PASSWORD key"),
        ),
        (true, true) => Check::ok(SECRET_FOUND, "Found", format!("Secret {secret:?} found")),
    });
    r.secret = Some(secret);
    Ok(())
}

async fn resolve_target(
    client: &Client,
    refs: &Refs<'_>,
    r: &mut Resolved,
) -> Result<(), kube::Error> {
    let (ns, condition) = (refs.namespace, refs.target_condition);
    let Some(target) = refs.target else {
        r.checks.push(match refs.no_target {
            Some(why) => Check::failed(condition, "NotSet", why),
            None => {
                r.kind = Some(TargetKind::Cluster);
                Check::ok(
                    condition,
                    "NoTarget",
                    "no target: the Task backs up the cluster",
                )
            }
        });
        return Ok(());
    };
    let what = format!("{} {:?}", target.kind, target.name);
    if let Some(other) = other_namespace(target.namespace.as_deref(), ns) {
        r.checks.push(Check::failed(
            condition,
            "CrossNamespace",
            refs.cross_namespace(&what, other),
        ));
        return Ok(());
    }
    let kind = match target.kind.parse::<TargetKind>() {
        Ok(TargetKind::PersistentVolumeClaim) => {
            r.kind = Some(TargetKind::PersistentVolumeClaim);
            match Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .get_opt(&target.name)
                .await?
            {
                Some(c) => {
                    r.checks
                        .push(Check::ok(condition, "Found", format!("{what} found")));
                    r.claim = Some(c);
                }
                None => r.checks.push(Check::failed(
                    condition,
                    "NotFound",
                    format!("{what} not found in namespace {ns:?}"),
                )),
            }
            return Ok(());
        }
        Ok(TargetKind::AppBinding) => {
            r.kind = Some(TargetKind::AppBinding);
            match Api::<AppBinding>::namespaced(client.clone(), ns)
                .get_opt(&target.name)
                .await?
            {
                Some(a) => {
                    r.checks
                        .push(Check::ok(condition, "Found", format!("{what} found")));
                    r.app_binding = Some(a);
                }
                None => r.checks.push(Check::failed(
                    condition,
                    "NotFound",
                    format!("{what} not found in namespace {ns:?}"),
                )),
            }
            return Ok(());
        }
        Ok(k) if Workload::supports(k) => k,
        Ok(k) => {
            r.checks.push(Check::failed(
                condition,
                "Unsupported",
                format!("{what}: kind {k} is not served yet (Deployment, StatefulSet, DaemonSet and ReplicaSet by a sidecar or init container, PersistentVolumeClaim and AppBinding by a Job)"),
            ));
            return Ok(());
        }
        Err(e) => {
            r.checks
                .push(Check::failed(condition, "Unsupported", e.to_string()));
            return Ok(());
        }
    };
    r.kind = Some(kind);
    match Workload::get(client, kind, ns, &target.name).await? {
        Some(w) => {
            r.checks
                .push(Check::ok(condition, "Found", format!("{what} found")));
            r.workload = Some(w);
        }
        None => r.checks.push(Check::failed(
            condition,
            "NotFound",
            format!("{what} not found in namespace {ns:?}"),
        )),
    }
    Ok(())
}
