use super::*;
use crate::{
    builtin,
    crd::{
        common::RetentionPolicy,
        task::{Function, Task},
    },
    vars::{job_vars, JobFacts, Repository, Session, Target},
};

fn seed<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/seed/");
    let text = std::fs::read_to_string(format!("{dir}{file}")).expect("seed fixture");
    serde_yaml::from_str(&text).expect("seed fixture parses")
}

fn facts<'a>(policy: Option<&'a RetentionPolicy>) -> JobFacts<'a> {
    JobFacts {
        session: Session::Backup {
            session: "db-backup-1",
            configuration: "database-backup-demo",
        },
        target: Target {
            api_version: "appcatalog.appscode.com/v1alpha1",
            kind: "AppBinding",
            resource: "appbindings",
            name: "quick-postgres",
            namespace: "demo",
        },
        repository: Repository {
            name: "stash-backup-repo",
            provider: "gcs",
            bucket: "stash-backup-repo",
            prefix: "default/deployment/stash-demo",
            secret_name: "gcs-secret",
            ..Repository::default()
        },
        hostname: "host-0",
        retention: policy,
        interim_dir: INTERIM_DIR,
        interim_volume: SLOT.tmp_volume,
        output_dir: OUTPUT_DIR,
        output_volume: SLOT.tmp_volume,
        databases: "my-postgres",
        pushgateway: "",
    }
}

fn support() -> Support {
    Support {
        pushgateway: None,
        storage_secret: "gcs-secret".into(),
        temp_dir: None,
        repository_volume: None,
    }
}

fn by_name(fns: Vec<Function>) -> BTreeMap<String, FunctionSpec> {
    fns.into_iter()
        .map(|f| (f.metadata.name.clone().unwrap_or_default(), f.spec))
        .collect()
}

fn plan<'a>(
    task: &'a Task,
    functions: &'a BTreeMap<String, FunctionSpec>,
    vars: &'a Vars,
    support: &'a Support,
) -> JobPlan<'a> {
    JobPlan {
        name: "db-backup-1".into(),
        namespace: "demo",
        session_name: "db-backup-1",
        owner: None,
        task_name: task.metadata.name.as_deref().unwrap_or_default(),
        task: &task.spec,
        functions,
        vars,
        claim: None,
        support,
        node: None,
        service_account: "stash-task",
        deadline_seconds: Some(3600),
    }
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

#[test]
fn the_seed_pg_backup_task_resolves_every_variable() {
    let task: Task = seed("24-task-pgbackup.yaml");
    let fns = by_name(vec![
        seed("20-function-pgbackup.yaml"),
        seed("22-function-stashpostbackup.yaml"),
    ]);
    let policy = RetentionPolicy {
        name: Some("keep-last-5".into()),
        keep_last: Some(5),
        prune: true,
        ..RetentionPolicy::default()
    };
    let vars = job_vars(&facts(Some(&policy)));
    let support = support();
    let job = job(&plan(&task, &fns, &vars, &support)).expect("job");
    let spec = job.spec.unwrap().template.spec.unwrap();
    let init = spec.init_containers.unwrap();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].name, "postgres-tool");
    assert_eq!(
        init[0].image.as_deref(),
        Some("appscodeci/postgresql-tool:v1")
    );
    let a = args(&init[0]);
    for want in [
        "--database=my-postgres",
        "--provider=gcs",
        "--hostname=host-0",
        "--path=default/deployment/stash-demo",
        "--output-dir=/tmp/interim",
        "--retention-policy.policy=keep-last-5",
        "--retention-policy.value=keep-last=5",
        "--metrics.enabled=false",
        "--metrics.labels=\"workload-kind=AppBinding,workload-name=quick-postgres\"",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
    }
    // `$(databaseSecret)` is Kubernetes' own syntax, left for the API server.
    let env = init[0].env.clone().unwrap();
    assert!(env
        .iter()
        .any(|e| e.name == "DB_HOST" && e.value.as_deref() == Some("$(host)")));
    assert!(env.iter().any(|e| e.name == "POD_NAME"));
    let main = &spec.containers[0];
    assert_eq!(main.name, "stash-post-backup");
    assert_eq!(
        args(main),
        [
            "post-backup-update",
            "--repository=stash-backup-repo",
            "--backupsession=db-backup-1",
            "--output-json-dir=/tmp/output"
        ]
    );
    // The Functions mount the scratch volume and the storage Secret by the names the
    // seed's variables give them; both exist.
    let volumes = spec.volumes.unwrap();
    for m in init[0].volume_mounts.iter().flatten() {
        assert!(volumes.iter().any(|v| v.name == m.name), "{}", m.name);
    }
    assert!(volumes
        .iter()
        .any(|v| v.name == "gcs-secret" && v.secret.is_some()));
}

#[test]
fn the_seed_cluster_and_recovery_tasks_resolve() {
    let vars = job_vars(&facts(None));
    let support = support();
    let task: Task = seed("26-task-clusterbackup.yaml");
    let fns = by_name(vec![
        seed("19-function-clusterbackup.yaml"),
        seed("22-function-stashpostbackup.yaml"),
    ]);
    let j = job(&plan(&task, &fns, &vars, &support)).expect("cluster job");
    let init = j
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .init_containers
        .unwrap();
    assert!(args(&init[0]).contains(&"--retention-policy.value=".to_string()));

    let mut restore = facts(None);
    restore.session = Session::Restore {
        session: "database-recovery-demo",
    };
    let vars = job_vars(&restore);
    let task: Task = seed("25-task-pgrecovery.yaml");
    let fns = by_name(vec![
        seed("21-function-pgrecovery.yaml"),
        seed("23-function-stashpostrecovery.yaml"),
    ]);
    let j = job(&plan(&task, &fns, &vars, &support)).expect("recovery job");
    let main = &j.spec.unwrap().template.spec.unwrap().containers[0];
    assert!(args(main).contains(&"--recoveryconfiguration=database-recovery-demo".to_string()));
}

#[test]
fn the_builtin_volume_backup_mounts_the_claim_in_every_step_and_pins_the_node() {
    let fns = by_name(builtin::functions("stash:test"));
    let task = builtin::tasks()
        .into_iter()
        .find(|t| t.metadata.name.as_deref() == Some("volume-backup"))
        .unwrap();
    let vars = job_vars(&facts(None));
    let support = support();
    let mut p = plan(&task, &fns, &vars, &support);
    p.claim = Some(ClaimMount {
        claim: "demo-pvc".into(),
        mounts: vec![VolumeMount {
            name: "x".into(),
            mount_path: "/source/data".into(),
            ..VolumeMount::default()
        }],
    });
    p.node = Some("node-2".into());
    let j = job(&p).expect("job");
    let spec = j.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(3600));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("stash-task"));
    let all: Vec<&Container> = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
        .collect();
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["volume-backup", "stash-post-backup"]
    );
    for c in &all {
        let mounts = c.volume_mounts.as_ref().unwrap();
        let target = mounts
            .iter()
            .find(|m| m.mount_path == "/source/data")
            .unwrap();
        assert_eq!(target.name, TARGET_VOLUME);
        assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));
        assert!(mounts
            .iter()
            .any(|m| m.mount_path == crate::pod_template::SECRET_DIR));
    }
    assert_eq!(
        args(all[0]),
        [
            "run-task",
            "backup",
            "--backup-session=db-backup-1",
            "--hostname=host-0",
            "--output-dir=/tmp/output",
            "--metrics.enabled=false",
            "--metrics.pushgateway-url=",
        ]
    );
    // With the operator's Pushgateway, every step is told to push there.
    let mut pushing = facts(None);
    pushing.pushgateway = "http://pushgateway:9091";
    let j = job(&plan(&task, &fns, &job_vars(&pushing), &support)).expect("job");
    let spec = j.spec.unwrap().template.spec.unwrap();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let a = args(c);
        assert!(a.contains(&"--metrics.enabled=true".to_string()), "{a:?}");
        assert!(a.contains(&"--metrics.pushgateway-url=http://pushgateway:9091".to_string()));
    }
    let claim = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == TARGET_VOLUME)
        .unwrap();
    assert_eq!(
        claim.persistent_volume_claim.unwrap().claim_name,
        "demo-pvc"
    );
    let terms = pod
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms;
    assert_eq!(
        terms[0].match_fields.as_ref().unwrap()[0].values,
        Some(vec!["node-2".to_string()])
    );
}

#[test]
fn what_cannot_be_built_names_the_task_function_or_volume() {
    let vars = job_vars(&facts(None));
    let support = support();
    let task: Task = seed("24-task-pgbackup.yaml");
    let only_one = by_name(vec![seed("20-function-pgbackup.yaml")]);
    let e = job(&plan(&task, &only_one, &vars, &support)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Task \"pgBackup\" names Function \"stashPostBackup\", which does not exist"
    );

    let mut f: Function = seed("22-function-stashpostbackup.yaml");
    f.spec.container.as_mut().unwrap()["args"][1] = "--repository=${nope}".into();
    let fns = by_name(vec![seed("20-function-pgbackup.yaml"), f]);
    let e = job(&plan(&task, &fns, &vars, &support)).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Function stashPostBackup spec.container.args[1]: unknown variable ${nope}"
        ),
        "{e}"
    );

    let mut f: Function = seed("22-function-stashpostbackup.yaml");
    f.spec.container.as_mut().unwrap()["volumeMounts"][0]["name"] = "elsewhere".into();
    let fns = by_name(vec![seed("20-function-pgbackup.yaml"), f]);
    let e = job(&plan(&task, &fns, &vars, &support)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Function \"stashPostBackup\" mounts volume \"elsewhere\", which neither the Task nor the operator provides"
    );

    let empty = Task::new("empty", TaskSpec::default());
    let e = job(&plan(&empty, &fns, &vars, &support)).unwrap_err();
    assert_eq!(e.to_string(), "Task \"empty\" has no steps");
}

#[test]
fn function_names_become_container_names() {
    assert_eq!(container_name("stashPostBackup"), "stash-post-backup");
    assert_eq!(container_name("pg-backup"), "pg-backup");
    assert_eq!(container_name("PG_Backup.v1"), "p-g-backup-v1");
    assert_eq!(container_name("__"), "step");
}

#[test]
fn long_session_names_make_short_job_names() {
    assert_eq!(job_name("pvc-backup-1733"), "pvc-backup-1733");
    let long = format!("{}-1733000000", "a".repeat(60));
    let name = job_name(&long);
    assert!(name.len() <= 63, "{name}");
    assert_ne!(
        job_name(&long),
        job_name(&format!("{}-1733000001", "a".repeat(60)))
    );
}
