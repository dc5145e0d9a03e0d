//! Over three minutes from a configuration's creation, with every operator process
//! SIGKILLed and restarted in the middle: the schedule creates sessions by itself, they
//! back up, and the target rolls exactly once.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::apps::v1::Deployment;
use stash_operator::crd::{backup_configuration::BackupConfiguration, repository::Repository};

use super::support::{processes, sample_data, seed, setup, Setup};

const WINDOW: Duration = Duration::from_secs(180);
const KILL_AT: Duration = Duration::from_secs(45);

/// SIGKILLs every `stash operator run` process; returns how many there were.
fn kill_operators() -> usize {
    let pids = processes(&["operator", "run"]);
    for pid in &pids {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -KILL {pid}")])
            .status();
    }
    pids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_and_an_operator_kill_rolls_nothing() {
    // The work directory lives as long as the test.
    let Setup {
        ns, work: _work, ..
    } = setup("op-sched").await;
    sample_data(&ns, &[("notes.txt", "one\n")]);
    ns.apply(&seed("13-deployment-stash-demo.yaml", &ns.name));
    let deployments = ns.api::<Deployment>();
    let first = deployments
        .get("stash-demo")
        .await
        .expect("deployment")
        .metadata
        .generation
        .expect("generation");
    let configuration = seed("02-backupconfiguration-workload-data-backup.yaml", &ns.name)
        .replace("'@every 1h'", "'@every 20s'");
    assert!(configuration.contains("@every 20s"));
    ns.apply(&configuration);
    let start = Instant::now();
    let mut killed = 0;
    let mut seen = vec![first];
    while start.elapsed() < WINDOW {
        if killed == 0 && start.elapsed() >= KILL_AT {
            killed = kill_operators();
            assert!(killed > 0, "no operator process to kill");
        }
        if let Ok(d) = deployments.get("stash-demo").await {
            let g = d.metadata.generation.expect("generation");
            if seen.last() != Some(&g) {
                seen.push(g);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        seen,
        [first, first + 1],
        "the target's generation over the window (operator killed at {KILL_AT:?})"
    );
    let bc = ns
        .api::<BackupConfiguration>()
        .get("workload-data-backup")
        .await
        .expect("configuration");
    let status = bc.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Ready"));
    assert!(status.last_backup_time.is_some(), "{status:?}");
    let repo = ns
        .api::<Repository>()
        .get("stash-backup-repo")
        .await
        .expect("repository");
    let snapshots = repo.status.and_then(|s| s.snapshot_count).unwrap_or(0);
    assert!(
        snapshots >= 3,
        "the schedule made {snapshots} snapshot(s) in {WINDOW:?}"
    );
}
