//! The operator end to end: installed from `operator/deploy/` (two replicas, one
//! leading), it puts the sidecar into the seed's Deployment, a hand-made BackupSession
//! (the seed's instant trigger) is backed up by the sidecar in-process, and the
//! repository it wrote passes `restic check --read-data` and restores byte for byte;
//! the leader's `/metrics` reports the session under released Stash's metric names.

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::Api;
use stash_operator::crd::{backup_session::BackupSession, repository::Repository};

use super::support::{operator_metrics, ready, restic, sample_data, seed, setup, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workload_backup_runs_end_to_end() {
    let Setup {
        cluster,
        ns,
        work,
        repo_dir,
    } = setup("op-backup").await;
    sample_data(
        &ns,
        &[
            ("index.html", "<h1>hello from stash</h1>\n"),
            ("notes.txt", "one\ntwo\nthree\n"),
        ],
    );
    ns.apply(&seed("13-deployment-stash-demo.yaml", &ns.name));
    let deployments = ns.api::<Deployment>();
    let before = deployments.get("stash-demo").await.expect("deployment");
    ns.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &ns.name,
    ));

    let bc = ready(&ns, "workload-data-backup").await;
    let target = bc.spec.target.clone().expect("target");
    assert_eq!(
        (target.paths.as_slice(), target.directories.is_empty()),
        (&["/source/data".to_string()][..], true),
        "the seed's directories written back as released Stash's paths"
    );
    let status = bc.status.expect("status");
    assert!(
        status.next_backup_time.is_some(),
        "@every 1h schedules the next session"
    );
    assert!(status
        .conditions
        .iter()
        .all(|c| c.status == "True" && c.observed_generation == bc.metadata.generation));
    let after = ns
        .wait_for::<Deployment>(
            "stash-demo",
            "the sidecar in the template",
            Duration::from_secs(30),
            |d| {
                d.spec
                    .template
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.containers.iter().any(|c| c.name == "stash"))
            },
        )
        .await;
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1),
        "exactly one rollout"
    );

    // The seed's instant trigger, naming this configuration.
    let trigger = seed("11-backupsession-demo-volume-backup-session.yaml", &ns.name)
        .replace("name: volume-backup-demo", "name: workload-data-backup");
    ns.apply(&trigger);
    let done = ns
        .wait_for::<BackupSession>(
            "demo-volume-backup-session",
            "a finished session",
            Duration::from_secs(180),
            |s| {
                matches!(
                    s.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed" | "Skipped")
                )
            },
        )
        .await;
    let status = done.status.expect("session status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    let host = &status.targets[0].stats[0];
    assert_eq!(host.hostname, "host-0");
    assert_eq!(host.snapshots[0].path, "/source/data");
    assert_eq!(
        status.stats.len(),
        1,
        "the seed's flat stats: one per directory"
    );
    let dir = &status.stats[0];
    assert_eq!(dir.directory.as_deref(), Some("/source/data"));
    let snapshot = dir.snapshot.clone().expect("snapshot id");
    assert_eq!(
        dir.file_stats.as_ref().and_then(|f| f.new),
        Some(2),
        "{dir:?}"
    );

    let repo = ns
        .wait_for::<Repository>(
            "stash-backup-repo",
            "Repository status",
            Duration::from_secs(30),
            |r| r.status.as_ref().and_then(|s| s.snapshot_count) == Some(1),
        )
        .await;
    assert!(repo.status.and_then(|s| s.last_backup_time).is_some());

    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let target = work.path().join("restored");
    let out = restic(
        &repo_dir,
        &["restore", &snapshot, "--target", &target.to_string_lossy()],
    );
    assert!(
        out.status.success(),
        "restic restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notes =
        std::fs::read_to_string(target.join("source/data/notes.txt")).expect("restored notes.txt");
    assert_eq!(notes, "one\ntwo\nthree\n");
    let index = std::fs::read_to_string(target.join("source/data/index.html"))
        .expect("restored index.html");
    assert_eq!(index, "<h1>hello from stash</h1>\n");

    // One replica leads.
    let lease = Api::<Lease>::namespaced(ns.client.clone(), "stash-system")
        .get("stash-operator")
        .await
        .expect("the leader Lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        holder.starts_with("stash-operator-"),
        "lease holder {holder:?}"
    );

    // The leader serves released Stash's backup metrics, from the session's status.
    let base = format!(
        "namespace=\"{}\",invoker_kind=\"BackupConfiguration\",invoker_name=\"workload-data-backup\",repository=\"stash-backup-repo\"",
        ns.name
    );
    let host =
        format!("{base},target_kind=\"Deployment\",target_name=\"stash-demo\",host=\"host-0\"");
    let expected = [
        format!("stash_backup_session_success{{{base}}} 1\n"),
        format!("stash_backup_schedule_interval_seconds{{{base}}} 3600\n"),
        format!("stash_backup_last_success_time_seconds{{{base}}} "),
        format!("stash_backup_host_backup_success{{{host}}} 1\n"),
        format!("stash_backup_host_files_total{{{host}}} 2\n"),
        format!("stash_backup_host_files_new{{{host}}} 2\n"),
    ];
    ns.eventually("the backup metrics", Duration::from_secs(30), || {
        let text = operator_metrics(cluster, &holder).unwrap_or_default();
        let found = expected.iter().all(|l| text.contains(l.as_str()));
        async move { found.then_some(()) }
    })
    .await;

    // Deleting the configuration takes the sidecar out: one more rollout.
    let out = cluster.kubectl(
        &[
            "delete",
            "-n",
            &ns.name,
            "backupconfiguration",
            "workload-data-backup",
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
    let removed = deployments.get("stash-demo").await.expect("deployment");
    assert!(removed
        .spec
        .template
        .spec
        .as_ref()
        .is_some_and(|s| s.containers.iter().all(|c| c.name != "stash")));
    assert_eq!(
        removed.metadata.generation,
        after.metadata.generation.map(|g| g + 1)
    );
}
