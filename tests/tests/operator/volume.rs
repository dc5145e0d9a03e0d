//! Claims as Jobs: the seed's PVC backup (`task: volumeBackup`) and PVC restore
//! (`volumeRecovery`) applied as written; an instant BackupSession runs a Job at once,
//! the repository passes `restic check --read-data` and restores with restic, and the
//! RestoreSession's Job gives an emptied claim its files back. A ReadWriteOnce claim in
//! use is read on its node; a step that fails ends the session with its reason.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::api::ListParams;
use stash_operator::crd::{
    backup_configuration::BackupConfiguration, backup_session::BackupSession,
    restore_session::RestoreSession,
};
use stash_tests::kube::TestNs;

use super::support::{finish_message, finished, ready, restic, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(180);

fn write(dir: &Path, name: &str, data: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write test data");
}

async fn session(ns: &TestNs, name: &str) -> BackupSession {
    ns.wait_for::<BackupSession>(name, "a finished backup", WAIT, |s| {
        finished(s.status.as_ref().and_then(|s| s.phase.as_deref()))
    })
    .await
}

async fn job_pods(ns: &TestNs, job: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("list pods")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_pvc_backup_and_restore_run_as_jobs() {
    let Setup {
        ns, work, repo_dir, ..
    } = setup("op-volume").await;
    ns.apply(&seed("15-persistentvolumeclaim-demo-pvc.yaml", &ns.name));
    let data = ns.claim_dir("demo-pvc");
    let blob: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    write(&data, "index.html", b"<h1>hello from a claim</h1>\n");
    write(&data, "deep/er/blob.bin", &blob);
    ns.apply(&seed(
        "05-backupconfiguration-volume-backup-demo.yaml",
        &ns.name,
    ));
    let bc = ready(&ns, "volume-backup-demo").await;
    let conditions: Vec<&str> = bc
        .status
        .as_ref()
        .expect("status")
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert!(conditions.contains(&"TaskFound"), "{conditions:?}");

    // The seed's instant trigger, as written.
    ns.apply(&seed(
        "11-backupsession-demo-volume-backup-session.yaml",
        &ns.name,
    ));
    let bs = session(&ns, "demo-volume-backup-session").await;
    let status = bs.status.clone().expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    let host = &status.targets[0].stats[0];
    assert_eq!(host.hostname, "host-0");
    assert_eq!(host.snapshots.len(), 1, "{host:?}");
    assert_eq!(host.snapshots[0].path, "/source/data");
    let job = ns
        .api::<Job>()
        .get("demo-volume-backup-session")
        .await
        .expect("the session's Job");
    let pod = job.spec.expect("spec").template.spec.expect("pod");
    let steps: Vec<String> = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(steps, ["volume-backup", "stash-post-backup"]);
    assert_eq!(pod.service_account_name.as_deref(), Some("stash-task"));
    assert!(
        pod.affinity.is_none(),
        "a ReadWriteMany claim is read from any node"
    );

    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = work.path().join("restic-out");
    let target = out.to_str().expect("utf-8 path");
    let restored = restic(
        &repo_dir,
        &["restore", "latest", "--host", "host-0", "--target", target],
    );
    assert!(
        restored.status.success(),
        "restic restore: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("source/data/deep/er/blob.bin")).expect("restored blob"),
        blob
    );

    // The claim emptied, the seed's RestoreSession brings it back through a Job.
    std::fs::remove_dir_all(data.join("deep")).expect("empty the claim");
    std::fs::remove_file(data.join("index.html")).expect("empty the claim");
    ns.apply(&seed(
        "06-restoresession-recovery-volume-demo.yaml",
        &ns.name,
    ));
    let rs = ns
        .wait_for::<RestoreSession>("recovery-volume-demo", "a finished restore", WAIT, |r| {
            finished(r.status.as_ref().and_then(|s| s.phase.as_deref()))
        })
        .await;
    let status = rs.status.expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    assert_eq!(
        std::fs::read(data.join("deep/er/blob.bin")).expect("blob back in the claim"),
        blob
    );
    assert_eq!(
        std::fs::read_to_string(data.join("index.html")).expect("index back"),
        "<h1>hello from a claim</h1>\n"
    );
    let pods = job_pods(&ns, "recovery-volume-demo").await;
    assert_eq!(pods.len(), 1, "one restore pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_write_once_claim_is_read_on_its_node_and_failures_name_their_reason() {
    let Setup { ns, .. } = setup("op-volume-rwo").await;
    ns.apply(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: rwo
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: user
spec:
  containers:
  - name: app
    image: busybox
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: rwo
",
    );
    let user = ns
        .wait_for::<Pod>("user", "a running user of the claim", WAIT, |p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .await;
    let node = user.spec.and_then(|s| s.node_name).expect("node");
    write(&ns.claim_dir("rwo"), "a.txt", b"pinned\n");
    ns.apply(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: rwo-backup
spec:
  task:
    name: pvc-backup
  repository:
    name: stash-backup-repo
  target:
    ref:
      apiVersion: v1
      kind: PersistentVolumeClaim
      name: rwo
    volumeMounts:
    - name: rwo
      mountPath: /rwo
",
    );
    ready(&ns, "rwo-backup").await;
    super::support::back_up(&ns, "rwo-1", "rwo-backup").await;
    let bs = session(&ns, "rwo-1").await;
    let status = bs.status.expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    let pods = job_pods(&ns, "rwo-1").await;
    assert_eq!(
        pods[0].spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.as_str()),
        "the Job runs where the claim is mounted"
    );

    // A wrong password: the work step fails and says so on the session.
    ns.apply(
        "apiVersion: v1
kind: Secret
metadata:
  name: gcs-secret
stringData:
  RESTIC_PASSWORD: not-the-password
",
    );
    super::support::back_up(&ns, "rwo-2", "rwo-backup").await;
    let bs = session(&ns, "rwo-2").await;
    let status = bs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
    let why = finish_message(&status);
    assert!(why.contains("host-0") && why.contains("password"), "{why}");

    // A Task that does not exist: the configuration says which, and no Job is made.
    ns.apply(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: rwo-backup
spec:
  task:
    name: no-such-task
  repository:
    name: stash-backup-repo
  target:
    ref:
      apiVersion: v1
      kind: PersistentVolumeClaim
      name: rwo
    volumeMounts:
    - name: rwo
      mountPath: /rwo
",
    );
    let bc = ns
        .wait_for::<BackupConfiguration>("rwo-backup", "NotReady", WAIT, |bc| {
            bc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("NotReady")
        })
        .await;
    let task = bc
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "TaskFound")
        .expect("TaskFound condition");
    assert_eq!(task.status, "False");
    assert!(
        task.message.contains("\"no-such-task\" not found"),
        "{}",
        task.message
    );
}
