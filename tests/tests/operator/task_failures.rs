//! A user-written Task whose Function cannot do its work: an image that cannot be
//! pulled ends the session Failed at once with the kubelet's reason, and a step that
//! never finishes ends it Failed at the configuration's `timeOut`. Neither leaves a
//! snapshot behind.

use stash_tests::kube::TestNs;

use super::support::{back_up, finish_message, ready, seed, setup, Setup};

/// A cluster-scoped Function and a Task of it alone, named `{ns}-{what}` so parallel
/// tests do not share them, and a configuration `what` backing up the seed's claim
/// with that Task.
fn user_task(ns: &TestNs, what: &str, image: &str, time_out: &str) {
    let task = format!("{}-{what}", ns.name);
    ns.apply(&format!(
        "apiVersion: stash.appscode.com/v1beta1
kind: Function
metadata:
  name: {task}
spec:
  image: {image}
  args:
  - backup
  - --hostname=${{hostname}}
---
apiVersion: stash.appscode.com/v1beta1
kind: Task
metadata:
  name: {task}
spec:
  steps:
  - name: {task}
---
apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: {what}
spec:
  task:
    name: {task}
  repository:
    name: stash-backup-repo
  timeOut: {time_out}
  target:
    ref:
      apiVersion: v1
      kind: PersistentVolumeClaim
      name: demo-pvc
    mountPath: /data
"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpullable_image_and_a_step_past_its_timeout_fail_the_session() {
    let Setup { ns, repo_dir, .. } = setup("op-taskfail").await;
    ns.apply(&seed("15-persistentvolumeclaim-demo-pvc.yaml", &ns.name));

    user_task(&ns, "pull", "registry.invalid/stash/nope:1", "5m");
    ready(&ns, "pull").await;
    let bs = back_up(&ns, "pull-1", "pull").await;
    let status = bs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
    let why = finish_message(&status);
    assert!(
        why.contains("ErrImagePull") && why.contains("registry.invalid"),
        "{why}"
    );

    // busybox runs no process on the stand-in kubelet: the step never ends.
    user_task(&ns, "stuck", "busybox", "15s");
    ready(&ns, "stuck").await;
    let bs = back_up(&ns, "stuck-1", "stuck").await;
    let status = bs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
    let why = finish_message(&status);
    assert!(why.to_lowercase().contains("deadline"), "{why}");

    let snapshots = std::fs::read_dir(repo_dir.join("snapshots"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(snapshots, 0, "no snapshot of a failed step");
}
