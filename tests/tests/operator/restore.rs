//! Restores into workloads: the seed's RestoreSession brings a Deployment's deleted
//! data back through the init container, once; a StatefulSet's rule restores one
//! replica's data into another.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Pod,
};
use kube::api::ListParams;
use stash_operator::crd::restore_session::RestoreSession;
use stash_tests::kube::TestNs;

use super::support::{back_up, finished, ready, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(180);

fn init_containers(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|c| c.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

async fn restored(ns: &TestNs, name: &str) -> RestoreSession {
    ns.wait_for::<RestoreSession>(name, "a finished restore", WAIT, |r| {
        finished(r.status.as_ref().and_then(|s| s.phase.as_deref()))
    })
    .await
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write test data");
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_restore_brings_deleted_data_back_once() {
    let Setup {
        cluster, ns, work, ..
    } = setup("op-restore").await;
    let data = work.path().join("data");
    write(&data, "index.html", "<h1>hello from stash</h1>\n");
    write(&data, "notes.txt", "one\ntwo\nthree\n");
    write(&data, "deep/er/blob.bin", &"x".repeat(300_000));
    // The seed's Deployment, its data on a hostPath volume the test can empty.
    let deployment = seed("13-deployment-stash-demo.yaml", &ns.name).replace(
        "configMap:\n          name: stash-sample-data",
        &format!("hostPath:\n          path: {}", data.display()),
    );
    assert!(deployment.contains("hostPath"), "{deployment}");
    ns.apply(&deployment);
    ns.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &ns.name,
    ));
    ready(&ns, "workload-data-backup").await;
    let backup = back_up(&ns, "before-restore", "workload-data-backup").await;
    let phase = backup.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(phase, Some("Succeeded"), "{:?}", backup.status);

    for f in ["index.html", "notes.txt", "deep"] {
        let p = data.join(f);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("delete data");
        } else {
            std::fs::remove_file(p).expect("delete data");
        }
    }
    let deployments = ns.api::<Deployment>();
    let before = deployments.get("stash-demo").await.expect("deployment");
    let old_pods: Vec<String> = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();

    ns.apply(&seed(
        "04-restoresession-recovery-database-demo.yaml",
        &ns.name,
    ));
    let rs = restored(&ns, "recovery-database-demo").await;
    let status = rs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.total_hosts, Some(1));
    assert_eq!(status.stats.len(), 1);
    assert_eq!(status.stats[0].hostname, "host-0");
    assert_eq!(status.stats[0].phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        read(&data, "notes.txt").as_deref(),
        Some("one\ntwo\nthree\n")
    );
    assert_eq!(
        read(&data, "index.html").as_deref(),
        Some("<h1>hello from stash</h1>\n")
    );
    assert_eq!(
        read(&data, "deep/er/blob.bin").map(|s| s.len()),
        Some(300_000)
    );
    let after = deployments.get("stash-demo").await.expect("deployment");
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1),
        "exactly one rollout for the restore"
    );
    assert_eq!(init_containers(&after.spec.template), ["stash-init"]);
    assert!(status
        .conditions
        .iter()
        .any(|c| c.type_ == "StashInitContainerInjected" && c.status == "True"));

    // A later start of the workload does not restore again.
    std::fs::remove_file(data.join("notes.txt")).expect("delete notes.txt");
    let pods = ns.api::<Pod>();
    let current: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|n| !old_pods.contains(n))
        .collect();
    assert!(!current.is_empty(), "the restore rolled the workload");
    for p in &current {
        let _ = pods.delete(p, &Default::default()).await;
    }
    ns.eventually(
        "a new pod whose init container found the host restored",
        WAIT,
        || {
            let pods = pods.clone();
            let (current, old, ns) = (&current, &old_pods, &ns);
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?;
                list.items
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .filter(|n| !current.contains(n) && !old.contains(n))
                    .find(|n| ns.log(n, "stash-init").contains("restored already"))
            }
        },
    )
    .await;
    assert_eq!(read(&data, "notes.txt"), None, "restored a second time");

    // Deleting the session takes the init container out: one more rollout.
    let out = cluster.kubectl(
        &[
            "delete",
            "-n",
            &ns.name,
            "restoresession",
            "recovery-database-demo",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = deployments.get("stash-demo").await.expect("deployment");
    assert!(init_containers(&last.spec.template).is_empty());
    assert_eq!(
        last.metadata.generation,
        after.metadata.generation.map(|g| g + 1)
    );
    assert!(
        last.spec
            .template
            .spec
            .as_ref()
            .is_some_and(|s| s.containers.iter().any(|c| c.name == "stash")),
        "the backup sidecar stays"
    );
}

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: stash-demo
spec:
  replicas: 3
  serviceName: stash-demo
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: stash-sts}
  template:
    metadata:
      labels: {app: stash-sts}
    spec:
      containers:
      - name: busybox
        image: busybox
        args: [sleep, \"3600\"]
        volumeMounts:
        - {name: data, mountPath: /source/data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
";

/// Released Stash's spelling: `paths`, a named retention policy, `invoker` sessions.
const STATEFULSET_BACKUP: &str = "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: sts-backup
spec:
  repository:
    name: stash-backup-repo
  target:
    ref: {apiVersion: apps/v1, kind: StatefulSet, name: stash-demo}
    paths: [/source/data]
  retentionPolicy: {name: keep-last-5, keepLast: 5, prune: false}
";

const STATEFULSET_RESTORE: &str = "apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata:
  name: sts-restore
spec:
  repository:
    name: stash-backup-repo
  target:
    ref: {apiVersion: apps/v1, kind: StatefulSet, name: stash-demo}
    rules:
    - targetHosts: [host-2]
      sourceHost: host-1
      paths: [/source/data]
";

fn rolled_out(s: &StatefulSet) -> bool {
    let st = s.status.clone().unwrap_or_default();
    st.observed_generation == s.metadata.generation
        && st.updated_replicas == Some(3)
        && st.ready_replicas == Some(3)
        && st.current_revision == st.update_revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_replica_gets_another_replicas_data() {
    // The work directory lives as long as the test.
    let Setup {
        ns, work: _work, ..
    } = setup("op-sts").await;
    let claim = |i: usize| ns.claim_dir(&format!("data-stash-demo-{i}"));
    for i in 0..3 {
        write(&claim(i), "who.txt", &format!("replica {i}\n"));
    }
    ns.apply(STATEFULSET);
    ns.apply(STATEFULSET_BACKUP);
    ready(&ns, "sts-backup").await;
    ns.wait_for::<StatefulSet>("stash-demo", "the sidecar rolled out", WAIT, |s| {
        rolled_out(s)
            && s.spec
                .template
                .spec
                .as_ref()
                .is_some_and(|p| p.containers.iter().any(|c| c.name == "stash"))
    })
    .await;
    let backup = back_up(&ns, "sts-backup-1", "sts-backup").await;
    let status = backup.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    let mut hosts: Vec<&str> = status.targets[0]
        .stats
        .iter()
        .map(|h| h.hostname.as_str())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["host-0", "host-1", "host-2"]);

    std::fs::remove_file(claim(2).join("who.txt")).expect("delete replica 2's data");
    ns.apply(STATEFULSET_RESTORE);
    let rs = restored(&ns, "sts-restore").await;
    let status = rs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.stats.len(), 3, "{status:?}");
    assert_eq!(
        read(&claim(2), "who.txt").as_deref(),
        Some("replica 1\n"),
        "host-1's data in replica 2"
    );
    assert_eq!(read(&claim(0), "who.txt").as_deref(), Some("replica 0\n"));
    assert_eq!(read(&claim(1), "who.txt").as_deref(), Some("replica 1\n"));
}
