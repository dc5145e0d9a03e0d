use super::*;

fn fixture(file: &str) -> serde_yaml::Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/seed/");
    let text = std::fs::read_to_string(format!("{dir}{file}")).expect("seed fixture");
    serde_yaml::from_str(&text).expect("seed fixture parses")
}

fn template(file: &str) -> BackupBlueprintSpec {
    serde_yaml::from_value(fixture(file)["spec"].clone()).expect("a template's spec")
}

fn annotations(file: &str) -> BTreeMap<String, String> {
    serde_yaml::from_value(fixture(file)["metadata"]["annotations"].clone()).unwrap_or_default()
}

fn target(api_version: &str, kind: &str, name: &str) -> Target {
    Target {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: "demo".into(),
        name: name.into(),
        uid: "u-1".into(),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_seed_workload_template_makes_a_repository_and_configuration() {
    let req = request(&annotations("13-deployment-stash-demo.yaml"))
        .unwrap()
        .expect("a request");
    assert_eq!(req.template, "workload-data-backup-template");
    assert_eq!(req.paths, ["/source/data"]);
    let t = target("apps/v1", "Deployment", "stash-demo");
    let (repo, bc) = desired(
        &t,
        &req,
        &template("12-backuptemplate-workload-data-backup-template.yaml"),
    )
    .unwrap();
    assert_eq!(repo.metadata.name.as_deref(), Some("deployment-stash-demo"));
    assert_eq!(repo.metadata.namespace.as_deref(), Some("demo"));
    let gcs = repo.spec.backend.gcs.as_ref().expect("gcs");
    assert_eq!(gcs.prefix.as_deref(), Some("demo/stash-demo"));
    assert_eq!(
        repo.spec.backend.storage_secret_name.as_deref(),
        Some("gcs-secret")
    );
    let owner = &repo.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "u-1")
    );
    assert_eq!(bc.metadata.name, repo.metadata.name);
    assert_eq!(bc.spec.repository.name, "deployment-stash-demo");
    assert_eq!(bc.spec.schedule.as_deref(), Some("@every 1h"));
    assert_eq!(
        bc.spec.retention_policy.as_ref().unwrap().keep_last,
        Some(5)
    );
    let target = bc.spec.target.unwrap();
    assert_eq!(target.paths, ["/source/data"]);
    assert_eq!(target.reference.unwrap().kind, "Deployment");
    assert!(bc.spec.task.is_none(), "a workload needs no task");
}

#[test]
fn the_seed_pvc_template_mounts_the_claim_under_its_name() {
    let req = request(&annotations("15-persistentvolumeclaim-demo-pvc.yaml"))
        .unwrap()
        .expect("a request");
    let t = target("v1", "PersistentVolumeClaim", "demo-pvc");
    let (repo, bc) = desired(
        &t,
        &req,
        &template("14-backuptemplate-volume-backup-template.yaml"),
    )
    .unwrap();
    assert_eq!(
        repo.metadata.name.as_deref(),
        Some("persistentvolumeclaim-demo-pvc")
    );
    assert_eq!(
        bc.spec.task.and_then(|t| t.name).as_deref(),
        Some("volumeBackup")
    );
    assert_eq!(
        bc.spec.target.unwrap().mount_path.as_deref(),
        Some("/demo-pvc")
    );
}

#[test]
fn the_seed_database_template_names_its_task() {
    let req = request(&map(&[(TEMPLATE, "pgdb-backup-template")]))
        .unwrap()
        .unwrap();
    let t = target(
        "appcatalog.appscode.com/v1alpha1",
        "AppBinding",
        "quick-postgres",
    );
    let (repo, bc) = desired(
        &t,
        &req,
        &template("16-backuptemplate-pgdb-backup-template.yaml"),
    )
    .unwrap();
    assert_eq!(
        repo.metadata.name.as_deref(),
        Some("appbinding-quick-postgres")
    );
    assert_eq!(
        bc.spec.task.and_then(|t| t.name).as_deref(),
        Some("pgBackup")
    );
    let target = bc.spec.target.unwrap();
    assert!(target.mount_path.is_none() && target.paths.is_empty());
}

#[test]
fn released_annotations_and_variables_work_too() {
    let req = request(&map(&[
        (BLUEPRINT, "workload-backup-blueprint"),
        (TARGET_PATHS, "/source/data-1, /source/data-2"),
        (
            VOLUME_MOUNTS,
            "source-data-1:/source/data-1,source-data-2:/source/data-2:sub",
        ),
        (SCHEDULE, "*/15 * * * *"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(req.paths, ["/source/data-1", "/source/data-2"]);
    assert_eq!(req.mounts[1].sub_path.as_deref(), Some("sub"));
    let blueprint: BackupBlueprintSpec = serde_yaml::from_str(
        "backend:
  gcs: {bucket: qa, prefix: 'stash-backup/${TARGET_NAMESPACE}/${TARGET_KIND}/${TARGET_NAME}'}
  storageSecretName: gcs-secret
schedule: '*/5 * * * *'
",
    )
    .unwrap();
    let t = target("apps/v1", "StatefulSet", "sts-demo");
    let (repo, bc) = desired(&t, &req, &blueprint).unwrap();
    assert_eq!(
        repo.spec.backend.gcs.unwrap().prefix.as_deref(),
        Some("stash-backup/demo/statefulset/sts-demo")
    );
    assert_eq!(
        bc.spec.schedule.as_deref(),
        Some("*/15 * * * *"),
        "the target's schedule wins"
    );
    assert_eq!(bc.spec.target.unwrap().volume_mounts.len(), 2);
}

#[test]
fn no_template_no_request_and_bad_annotations_say_which() {
    assert_eq!(request(&map(&[(TARGET_PATHS, "/a")])).unwrap(), None);
    assert_eq!(request(&map(&[(TEMPLATE, "  ")])).unwrap(), None);
    let e = request(&map(&[(TEMPLATE, "t"), (VOLUME_MOUNTS, "data")])).unwrap_err();
    assert!(e.to_string().contains(VOLUME_MOUNTS), "{e}");
    let e = request(&map(&[(TEMPLATE, "t"), (TARGET_PATHS, "relative/dir")])).unwrap_err();
    assert!(e.to_string().contains("relative/dir"), "{e}");
    let e = request(&map(&[(TEMPLATE, "t"), (TARGET_DIRECTORIES, "[/a")])).unwrap_err();
    assert!(e.to_string().contains(TARGET_DIRECTORIES), "{e}");
}

#[test]
fn an_unknown_variable_in_the_backend_names_it() {
    let req = request(&map(&[(TEMPLATE, "t")])).unwrap().unwrap();
    let blueprint: BackupBlueprintSpec = serde_yaml::from_str(
        "backend:
  local: {mountPath: /repo, subPath: '${target.cluster}/x'}
  storageSecretName: s
",
    )
    .unwrap();
    let e = desired(
        &target("v1", "PersistentVolumeClaim", "c"),
        &req,
        &blueprint,
    )
    .unwrap_err();
    assert!(e.to_string().contains("target.cluster"), "{e}");
}
