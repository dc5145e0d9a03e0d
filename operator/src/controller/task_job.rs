//! Job-model sessions (a claim target): the Task a configuration or session names and
//! its Functions, the Job made of them ([`crate::job`]) with its ServiceAccount, the
//! node a ReadWriteOnce claim pins it to, and the Job's outcome read back.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{PersistentVolumeClaim, Pod, ServiceAccount},
};
use kube::{
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    Api, Client, Resource, ResourceExt,
};

use super::{Context, Error, MANAGER};
use crate::{
    builtin,
    conditions::Check,
    crd::{
        app_binding::AppBinding,
        common::TaskRef,
        repository::Repository,
        task::{Function, FunctionSpec, Task},
    },
    host::TargetKind,
    job::{self, outcome::JobOutcome, ClaimMount, JobPlan},
    location::{backend_facts, EngineLocation},
    pod_template::Support,
    vars::{self, JobFacts, Session, Target},
};

/// The condition of a Job-model configuration's or session's Task.
pub const TASK_FOUND: &str = "TaskFound";
/// The condition of a database target's AppBinding.
pub const APP_BINDING_VALID: &str = "AppBindingValid";
/// The condition of a claim target's mount paths.
pub const MOUNTS_VALID: &str = "MountPathValid";
/// The ServiceAccount of every Job in a namespace (bound to [`crate::rbac::ROLE`]).
pub const SERVICE_ACCOUNT: &str = "stash-task";

/// A Task and its Functions, by name.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub task: Task,
    pub functions: BTreeMap<String, FunctionSpec>,
}

/// The Task a Job-model target runs: the one named, else the built-in for the kind
/// and the work.
pub fn task_name(task: Option<&TaskRef>, kind: TargetKind, backup: bool) -> String {
    task.and_then(|t| t.name.clone())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            match (kind, backup) {
                (TargetKind::AppBinding, true) => builtin::PG_BACKUP,
                (TargetKind::AppBinding, false) => builtin::PG_RECOVERY,
                (TargetKind::Cluster, _) => builtin::CLUSTER_BACKUP,
                (_, true) => builtin::VOLUME_BACKUP,
                (_, false) => builtin::VOLUME_RECOVERY,
            }
            .to_string()
        })
}

/// How a Job reaches an AppBinding's database, as Task variables: `DB_HOST` (its
/// Service, or its URL's host), `DB_PORT`, `DB_SECRET` (the credentials' Secret),
/// and the seed's `host` and `databaseSecret`.
///
/// # Errors
/// The AppBinding names no Service or URL, or no Secret; the message names the field.
pub fn app_binding_params(ab: &AppBinding) -> Result<Vec<(String, String)>, String> {
    let name = ab.name_any();
    let client = ab.spec.client_config.clone().unwrap_or_default();
    let (host, port) = match (&client.service, &client.url) {
        (Some(s), _) => (s.name.clone(), s.port.unwrap_or(5432).to_string()),
        (None, Some(url)) => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            match authority.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.to_string()),
                _ => (authority.to_string(), "5432".to_string()),
            }
        }
        (None, None) => {
            return Err(format!(
            "AppBinding {name:?} sets neither spec.clientConfig.service nor spec.clientConfig.url"
        ))
        }
    };
    let secret = ab
        .spec
        .secret
        .as_ref()
        .map(|s| s.name.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!("AppBinding {name:?} sets no spec.secret: the database's credentials")
        })?;
    Ok(vec![
        ("DB_HOST".into(), host.clone()),
        ("host".into(), host),
        ("DB_PORT".into(), port.clone()),
        ("port".into(), port),
        ("DB_SECRET".into(), secret.clone()),
        ("databaseSecret".into(), secret),
    ])
}

/// The condition of a database target's connection details.
pub fn app_binding_check(ab: &AppBinding) -> Check {
    match app_binding_params(ab) {
        Ok(p) => {
            let get = |k: &str| {
                p.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Check::ok(
                APP_BINDING_VALID,
                "Valid",
                format!(
                    "the Job reaches the database at {}:{}",
                    get("DB_HOST"),
                    get("DB_PORT")
                ),
            )
        }
        Err(e) => Check::failed(APP_BINDING_VALID, "Invalid", e),
    }
}

/// An AppBinding's facts as Task variables name them.
pub fn app_binding_target<'a>(name: &'a str, namespace: &'a str) -> Target<'a> {
    Target {
        api_version: "appcatalog.appscode.com/v1alpha1",
        kind: "AppBinding",
        resource: "appbindings",
        name,
        namespace,
    }
}

/// A configuration's or session's own Task inputs, in both spellings (and the seed's
/// `task.database`), which the Task's and Functions' placeholders may name.
pub fn params(task: Option<&TaskRef>) -> Vec<(String, String)> {
    let Some(t) = task else { return Vec::new() };
    let mut out: Vec<(String, String)> = t
        .params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    out.extend(t.inputs.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(db) = t.database.as_ref().filter(|d| !d.is_empty()) {
        out.push(("databases".into(), db.clone()));
        out.push(("TARGET_DATABASES".into(), db.clone()));
    }
    out
}

/// Reads Task `name` and its Functions; a missing one is the error's message.
///
/// # Errors
/// API errors other than not-found.
pub async fn load(client: &Client, name: &str) -> Result<Result<Loaded, String>, kube::Error> {
    let object = builtin::object_name(name);
    let spelled = |what: &str, name: &str, object: &str| {
        if name == object {
            format!("{what} {name:?}")
        } else {
            format!("{what} {name:?} (object {object:?})")
        }
    };
    let Some(task) = Api::<Task>::all(client.clone()).get_opt(&object).await? else {
        return Ok(Err(format!(
            "{} not found (built-in: {}, {}, pvc-backup, pvc-restore)",
            spelled("Task", name, &object),
            builtin::VOLUME_BACKUP,
            builtin::VOLUME_RECOVERY
        )));
    };
    let names: Vec<String> = if task.spec.functions.is_empty() {
        task.spec.steps.iter().map(|s| s.name.clone()).collect()
    } else {
        task.spec.functions.iter().map(|f| f.name.clone()).collect()
    };
    let mut functions = BTreeMap::new();
    let api = Api::<Function>::all(client.clone());
    for f in names {
        let f_object = builtin::object_name(&f);
        match api.get_opt(&f_object).await? {
            Some(found) => {
                functions.insert(f, found.spec);
            }
            None => {
                return Ok(Err(format!(
                    "Task {name:?} names {}, which does not exist",
                    spelled("Function", &f, &f_object)
                )))
            }
        }
    }
    Ok(Ok(Loaded {
        name: name.to_string(),
        task,
        functions,
    }))
}

/// The [`TASK_FOUND`] condition of a load.
pub fn check(loaded: &Result<Loaded, String>) -> Check {
    match loaded {
        Ok(l) => Check::ok(TASK_FOUND, "Found", format!("Task {:?} found", l.name)),
        Err(e) => Check::failed(TASK_FOUND, "NotFound", e.clone()),
    }
}

/// The condition on where a Job sees the claim: somewhere must be said.
pub fn mounts_check(mounts: &[k8s_openapi::api::core::v1::VolumeMount]) -> Check {
    if mounts.is_empty() {
        Check::failed(
            MOUNTS_VALID,
            "NoMountPath",
            "a PersistentVolumeClaim target needs target.mountPath (or target.volumeMounts): where the Job mounts the claim is where its snapshots' paths are",
        )
    } else {
        let paths: Vec<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
        Check::ok(
            MOUNTS_VALID,
            "Valid",
            format!("the Job mounts the claim at {}", paths.join(", ")),
        )
    }
}

/// Whether only one node may mount `claim` at a time.
fn single_node(claim: &PersistentVolumeClaim) -> bool {
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    !modes
        .iter()
        .any(|m| m == "ReadWriteMany" || m == "ReadOnlyMany")
}

/// The node where a live pod mounts `claim`, if one does (K8up's approach: the Job
/// goes there, so no workload has to stop for its volume to be read).
async fn node_of(client: &Client, ns: &str, claim: &str) -> Result<Option<String>, kube::Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter(|p| {
            p.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == claim)
                })
        })
        .find_map(|p| p.spec.and_then(|s| s.node_name)))
}

/// Everything a session's Job is made from, besides the Task.
pub struct Request<'a, K> {
    /// The session, which owns the Job.
    pub owner: &'a K,
    pub session: Session<'a>,
    /// The target's facts (empty for a cluster backup).
    pub target: Target<'a>,
    pub hostname: &'a str,
    pub repository: &'a Repository,
    pub location: &'a EngineLocation,
    pub secret: &'a str,
    /// The claim the Job mounts, for a claim target.
    pub claim: Option<&'a PersistentVolumeClaim>,
    pub mounts: Vec<k8s_openapi::api::core::v1::VolumeMount>,
    pub params: Vec<(String, String)>,
    pub retention: Option<&'a crate::crd::common::RetentionPolicy>,
    pub temp_dir: Option<crate::crd::common::EmptyDirSettings>,
    pub deadline_seconds: Option<i64>,
}

/// A claim's facts as Task variables name them.
pub fn claim_target<'a>(name: &'a str, namespace: &'a str) -> Target<'a> {
    Target {
        api_version: "v1",
        kind: "PersistentVolumeClaim",
        resource: "persistentvolumeclaims",
        name,
        namespace,
    }
}

/// A cluster backup's (no target) facts.
pub fn cluster_target(namespace: &str) -> Target<'_> {
    Target {
        api_version: "",
        kind: crate::host::TargetKind::Cluster.as_str(),
        resource: "",
        name: "",
        namespace,
    }
}

/// Creates the session's Job unless it exists; `Ok(Err(why))` when the Task cannot be
/// made into one (the session fails with `why`).
///
/// # Errors
/// API errors.
pub async fn ensure<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    req: &Request<'_, K>,
    loaded: &Loaded,
) -> Result<Result<String, String>, Error> {
    let ns = super::meta::namespace(req.owner)?;
    let session = req.owner.name_any();
    let name = job::job_name(&session);
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    if jobs.get_opt(&name).await?.is_some() {
        return Ok(Ok(name));
    }
    let facts = backend_facts(&req.repository.spec);
    let repo_name = req.repository.name_any();
    let job_facts = JobFacts {
        session: req.session.clone(),
        target: req.target.clone(),
        repository: vars::Repository {
            name: &repo_name,
            provider: &facts.provider,
            bucket: &facts.bucket,
            prefix: &facts.prefix,
            endpoint: &facts.endpoint,
            region: &facts.region,
            secret_name: req.secret,
        },
        hostname: req.hostname,
        retention: req.retention,
        interim_dir: job::INTERIM_DIR,
        interim_volume: job::SLOT.tmp_volume,
        output_dir: job::OUTPUT_DIR,
        output_volume: job::SLOT.tmp_volume,
        databases: "",
        pushgateway: ctx.pushgateway.as_deref().unwrap_or_default(),
    };
    let base = vars::job_vars(&job_facts);
    let vars = match base.with_inputs(
        "the task's params",
        req.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let node = match req.claim {
        Some(c) if single_node(c) => node_of(&ctx.client, &ns, &c.name_any()).await?,
        _ => None,
    };
    let support = Support {
        pushgateway: ctx.pushgateway.clone(),
        storage_secret: req.secret.to_string(),
        temp_dir: req.temp_dir.clone(),
        repository_volume: req.location.volume.clone(),
    };
    let plan = JobPlan {
        name: name.clone(),
        namespace: &ns,
        session_name: &session,
        owner: req.owner.controller_owner_ref(&()),
        task_name: &loaded.name,
        task: &loaded.task.spec,
        functions: &loaded.functions,
        vars: &vars,
        claim: req.claim.map(|c| ClaimMount {
            claim: c.name_any(),
            mounts: req.mounts.clone(),
        }),
        support: &support,
        node,
        service_account: SERVICE_ACCOUNT,
        deadline_seconds: req.deadline_seconds,
    };
    let job = match job::job(&plan) {
        Ok(j) => j,
        Err(e) => return Ok(Err(e.to_string())),
    };
    ensure_service_account(ctx, req.owner).await?;
    let pp = PostParams {
        field_manager: Some(MANAGER.to_string()),
        ..PostParams::default()
    };
    match jobs.create(&pp, &job).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Ok(name))
}

/// The Jobs' ServiceAccount in the owner's namespace and its binding to the pods'
/// Role, each owned (among others) by the session, so they go with the last one.
async fn ensure_service_account<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    owner: &K,
) -> Result<(), Error> {
    let ns = super::meta::namespace(owner)?;
    let reference = owner.controller_owner_ref(&()).map(|mut o| {
        o.controller = None;
        o.block_owner_deletion = None;
        o
    });
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SERVICE_ACCOUNT.to_string()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([(
                crate::rbac::MANAGED_BY.0.to_string(),
                crate::rbac::MANAGED_BY.1.to_string(),
            )])),
            owner_references: reference.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let pp = PatchParams::apply(&format!("{MANAGER}-{}", super::meta::uid(owner)?)).force();
    Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns)
        .patch(SERVICE_ACCOUNT, &pp, &Patch::Apply(&account))
        .await?;
    super::pod_rbac::ensure(owner, ctx, SERVICE_ACCOUNT).await
}

/// How often a session's Job is looked at while it runs: its pods' image errors come
/// without an event on the Job.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// The restic host of a Job-model target's snapshots: Stash's `host-0`, or the alias.
pub fn job_host(kind: crate::host::TargetKind, alias: Option<&str>) -> String {
    crate::host::host_name(kind, alias, "", "")
        .unwrap_or_else(|_| crate::host::DEFAULT_HOST.to_string())
}

/// Whole seconds from now until `deadline` (at least 1), the Job's
/// `activeDeadlineSeconds`.
pub fn seconds_left(
    deadline: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<i64> {
    deadline.map(|d| {
        (crate::time::from_k8s(d) - chrono::Utc::now())
            .num_seconds()
            .max(1)
    })
}

/// Loads Task `task_name` and creates the Job of `req` (an Event on the session names
/// it); a Task that is missing or cannot be made into a Job fails the session.
///
/// # Errors
/// API errors.
pub async fn start<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    req: &Request<'_, K>,
    task_name: &str,
) -> Result<JobOutcome, Error> {
    let loaded = match load(&ctx.client, task_name).await? {
        Ok(l) => l,
        Err(why) => return Ok(JobOutcome::Failed(why)),
    };
    match ensure(ctx, req, &loaded).await? {
        Ok(job) => {
            ctx.event(
                &req.owner.object_ref(&()),
                kube::runtime::events::EventType::Normal,
                "JobCreated",
                format!(
                    "running Task {task_name:?} as Job {job:?} for {}",
                    req.hostname
                ),
            )
            .await;
            Ok(JobOutcome::Running)
        }
        Err(why) => Ok(JobOutcome::Failed(why)),
    }
}

/// Where the session's Job stands; `None` when it does not exist.
///
/// # Errors
/// API errors.
pub async fn outcome(
    client: &Client,
    ns: &str,
    session: &str,
) -> Result<Option<JobOutcome>, kube::Error> {
    let name = job::job_name(session);
    let Some(j) = Api::<Job>::namespaced(client.clone(), ns)
        .get_opt(&name)
        .await?
    else {
        return Ok(None);
    };
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await?;
    Ok(Some(job::outcome::outcome(&j, &pods.items)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::common::Param;

    #[test]
    fn a_claim_target_defaults_to_the_builtin_tasks() {
        let pvc = TargetKind::PersistentVolumeClaim;
        assert_eq!(task_name(None, pvc, true), "volumeBackup");
        assert_eq!(task_name(None, pvc, false), "volumeRecovery");
        assert_eq!(task_name(None, TargetKind::AppBinding, false), "pgRecovery");
        let named = TaskRef {
            name: Some("pvc-backup".into()),
            ..TaskRef::default()
        };
        assert_eq!(task_name(Some(&named), pvc, true), "pvc-backup");
    }

    #[test]
    fn an_app_binding_gives_host_port_and_secret() {
        let seed: AppBinding = serde_yaml::from_str(include_str!(
            "../../../tests/fixtures/seed/07-appbinding-quick-postgres.yaml"
        ))
        .unwrap();
        let p = app_binding_params(&seed).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DB_HOST"), Some("quick-postgres"));
        assert_eq!(get("DB_PORT"), Some("5432"));
        assert_eq!(get("DB_SECRET"), Some("quick-postgres-auth"));
        let mut by_url = seed.clone();
        let cc = by_url.spec.client_config.as_mut().unwrap();
        cc.service = None;
        cc.url = Some("postgres://db.example:6543/app?sslmode=disable".into());
        let p = app_binding_params(&by_url).unwrap();
        assert!(p.contains(&("DB_HOST".into(), "db.example".into())));
        assert!(p.contains(&("DB_PORT".into(), "6543".into())));
        let mut no_secret = seed;
        no_secret.spec.secret = None;
        assert!(app_binding_params(&no_secret)
            .unwrap_err()
            .contains("sets no spec.secret"));
    }

    #[test]
    fn params_come_in_both_spellings_and_the_seed_database() {
        let t = TaskRef {
            name: Some("pgBackup".into()),
            params: vec![Param {
                name: "args".into(),
                value: "--clean".into(),
            }],
            inputs: BTreeMap::from([("sanitize".to_string(), "false".to_string())]),
            database: Some("my-postgres".into()),
        };
        assert_eq!(
            params(Some(&t)),
            [
                ("args".to_string(), "--clean".to_string()),
                ("sanitize".into(), "false".into()),
                ("databases".into(), "my-postgres".into()),
                ("TARGET_DATABASES".into(), "my-postgres".into()),
            ]
        );
        assert!(params(None).is_empty());
    }

    #[test]
    fn only_many_node_claims_go_anywhere() {
        let claim = |modes: &[&str]| PersistentVolumeClaim {
            spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
                access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(single_node(&claim(&["ReadWriteOnce"])));
        assert!(single_node(&claim(&["ReadWriteOncePod"])));
        assert!(!single_node(&claim(&["ReadWriteMany"])));
        assert!(!single_node(&claim(&["ReadOnlyMany", "ReadWriteOnce"])));
        assert!(mounts_check(&[]).message.contains("target.mountPath"));
    }
}
