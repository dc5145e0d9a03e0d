//! A sidecar SIGKILLed in the middle of a backup: the kubelet restarts it, the
//! restarted sidecar fails the session with the reason and removes the lock its
//! predecessor left, the next session backs up and prunes, and restic finds the
//! repository sound.

use std::{process::Command, time::Duration};

use stash_operator::crd::backup_session::BackupSession;

use super::support::{back_up, finish_message, processes, ready, restic, setup, Setup};

const WAIT: Duration = Duration::from_secs(120);

/// Zeros enough to keep a backup busy for seconds (sparse: no disk space), deduplicated
/// to one blob, so nothing much is uploaded.
const BIG: u64 = 64 << 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_mid_backup_fails_its_session_and_the_next_one_runs() {
    let Setup {
        ns, work, repo_dir, ..
    } = setup("op-kill").await;
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("notes.txt"), "one\ntwo\n").expect("notes");
    let big = data.join("zeros.img");
    ns.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: kill-demo
spec:
  replicas: 1
  selector:
    matchLabels: {{app: kill-demo}}
  template:
    metadata:
      labels: {{app: kill-demo}}
    spec:
      containers:
      - name: busybox
        image: busybox
        args: [sleep, '3600']
        volumeMounts:
        - {{name: data, mountPath: /source/data}}
      volumes:
      - name: data
        hostPath: {{path: {}}}
---
apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: interrupted-backup
spec:
  repository:
    name: stash-backup-repo
  target:
    ref: {{apiVersion: apps/v1, kind: Deployment, name: kill-demo}}
    paths: [/source/data]
  retentionPolicy: {{name: keep-last-5, keepLast: 5, prune: true}}
",
        data.display()
    ));
    ready(&ns, "interrupted-backup").await;
    // A first backup, so the killed one has a repository to leave a lock in.
    let first = back_up(&ns, "interrupted-backup-0", "interrupted-backup").await;
    assert_eq!(first.status.and_then(|s| s.phase), Some("Succeeded".into()));
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(BIG))
        .expect("sparse file");

    ns.apply(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupSession
metadata:
  name: interrupted-backup-1
spec:
  invoker: {apiGroup: stash.appscode.com, kind: BackupConfiguration, name: interrupted-backup}
",
    );
    ns.wait_for::<BackupSession>("interrupted-backup-1", "the host claimed", WAIT, |s| {
        s.status
            .as_ref()
            .and_then(|s| s.targets.first())
            .and_then(|t| t.stats.first())
            .is_some_and(|h| h.phase.as_deref() == Some("Running"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = processes(&["sidecar", "--backup-configuration=interrupted-backup"]);
    assert!(!pids.is_empty(), "no sidecar process to kill");
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let failed = ns
        .wait_for::<BackupSession>(
            "interrupted-backup-1",
            "the interrupted session failed",
            WAIT,
            |s| s.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
        )
        .await;
    let status = failed.status.expect("status");
    let message = finish_message(&status);
    assert!(
        message.contains("restarted before it finished"),
        "{message:?}"
    );
    assert_eq!(status.targets[0].stats[0].phase.as_deref(), Some("Failed"));

    std::fs::remove_file(&big).expect("remove the big file");
    let next = back_up(&ns, "interrupted-backup-2", "interrupted-backup").await;
    let status = next.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    let pod_logs = ns.logs_of("stash");
    assert!(
        pod_logs.contains("removed the lock of a process that no longer runs"),
        "{pod_logs}"
    );
    let locks = restic(&repo_dir, &["list", "locks", "--no-lock"]);
    assert_eq!(String::from_utf8_lossy(&locks.stdout), "", "locks left");
    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}
