//! Measurements on the test cluster, run on demand (they print numbers; targets are
//! judged by a reader, not asserted on this noisy machine):
//!
//! ```sh
//! cargo test -p stash-tests --test kube operator::measure -- --ignored --nocapture --test-threads 1
//! ```

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use stash_operator::crd::{
    backup_configuration::BackupConfiguration, backup_session::BackupSession,
};

use super::support::{finished, processes, sample_data, seed, setup, Setup};

/// Resident memory in KiB and CPU time in clock ticks (user + system) of `pid`.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; after the name, 12 and 13 (0-based 11, 12).
    (rss, ticks(11) + ticks(12))
}

/// Resident KiB of `pid` per mapped file name and permissions (anonymous mappings as
/// `[anon]`), largest first: how much is the binary's code, its data, and the heap.
fn resident_by_mapping(pid: u32) -> Vec<(String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut current = String::new();
    for l in smaps.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.get(5).copied().unwrap_or("[anon]");
            let name = path.rsplit('/').next().unwrap_or(path);
            current = format!("{name} ({})", fields.get(1).copied().unwrap_or(""));
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            *by.entry(current.clone()).or_default() += kib;
        }
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.1));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn measure_idle_sidecar_and_time_to_first_backup() {
    // The work directory lives as long as the test.
    let Setup {
        ns, work: _work, ..
    } = setup("op-measure").await;
    sample_data(&ns, &[("notes.txt", "one\n")]);
    ns.apply(&seed("13-deployment-stash-demo.yaml", &ns.name));
    ns.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &ns.name,
    ));
    let pod = ns
        .eventually(
            "the sidecar's process",
            Duration::from_secs(120),
            || async {
                let pids = processes(&["--backup-configuration=workload-data-backup"]);
                let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
                let list = pods.list(&Default::default()).await.ok()?;
                let name = list
                    .items
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .find(|n| ns.log(n, "stash").contains("ready"))?;
                (pids.len() == 1).then(|| (pids[0], name))
            },
        )
        .await;
    let (pid, pod_name) = pod;
    // Warm up: one backup, so the idle figure is after real work.
    let session = |name: &str| {
        format!(
            "apiVersion: stash.appscode.com/v1beta1
kind: BackupSession
metadata:
  name: {name}
spec:
  invoker: {{apiGroup: stash.appscode.com, kind: BackupConfiguration, name: workload-data-backup}}
"
        )
    };
    for (i, name) in ["first", "second"].into_iter().enumerate() {
        let log_before = ns.log(&pod_name, "stash").matches("backing up").count();
        let t0 = Instant::now();
        ns.apply(&session(name));
        ns.eventually(
            "the sidecar starting the backup",
            Duration::from_secs(60),
            || async {
                (ns.log(&pod_name, "stash").matches("backing up").count() > log_before)
                    .then_some(())
            },
        )
        .await;
        let started = t0.elapsed();
        ns.wait_for::<BackupSession>(name, "a finished session", Duration::from_secs(120), |s| {
            finished(s.status.as_ref().and_then(|s| s.phase.as_deref()))
        })
        .await;
        println!(
            "session {}: creation to the sidecar starting the backup: {:.3} s (to the end, as seen by polling: {:.3} s)",
            i + 1,
            started.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
    }
    let (rss0, cpu0) = usage(pid);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (rss1, cpu1) = usage(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for l in status.lines().filter(|l| {
        ["RssAnon", "RssFile", "Threads"]
            .iter()
            .any(|k| l.starts_with(k))
    }) {
        println!("idle sidecar {l}");
    }
    // Proportional set size: file-backed pages shared with other processes (the other
    // sidecars and the operator on the node run the same binary) count in part.
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    for l in rollup.lines().filter(|l| l.starts_with("Pss")) {
        println!("idle sidecar {l}");
    }
    for (mapping, kib) in resident_by_mapping(pid).into_iter().take(8) {
        println!("idle sidecar resident in {mapping}: {kib} KiB");
    }
    println!(
        "idle sidecar over 60 s: RSS {:.1} MiB -> {:.1} MiB, CPU {} clock ticks ({:.2} s)",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        cpu1 - cpu0,
        (cpu1 - cpu0) as f64 / 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn measure_operator_with_500_configurations() {
    const N: usize = 500;
    let Setup {
        cluster,
        ns,
        work: _work,
        ..
    } = setup("op-500").await;
    // Deployments without replicas: the operator's work (templates, RBAC, schedules)
    // without 500 pods on this machine.
    let mut yaml = String::new();
    for i in 0..N {
        yaml.push_str(&format!(
            "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
      - {{name: app, image: busybox, volumeMounts: [{{name: data, mountPath: /data}}]}}
      volumes: [{{name: data, emptyDir: {{}}}}]
---
apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata: {{name: backup-{i}}}
spec:
  schedule: '@every 1h'
  repository: {{name: stash-backup-repo}}
  target:
    ref: {{apiVersion: apps/v1, kind: Deployment, name: app-{i}}}
    paths: [/data]
"
        ));
    }
    let before: Vec<(u32, u64)> = processes(&["operator", "run"])
        .into_iter()
        .map(|p| (p, usage(p).0))
        .collect();
    let t0 = Instant::now();
    let out = cluster.kubectl(
        &["apply", "--server-side", "-n", &ns.name, "-f", "-"],
        Some(&yaml),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = t0.elapsed();
    let api = ns.api::<BackupConfiguration>();
    ns.eventually(
        "every configuration Ready",
        Duration::from_secs(900),
        || async {
            let list = api.list(&Default::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|b| b.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready"))
                .count();
            (ready == N).then_some(())
        },
    )
    .await;
    let settled = t0.elapsed();
    let deployments = ns.api::<Deployment>();
    let list = deployments
        .list(&Default::default())
        .await
        .expect("deployments");
    let rolled = list
        .items
        .iter()
        .filter(|d| d.metadata.generation == Some(2))
        .count();
    println!(
        "{N} configurations: applied in {:.1} s, all Ready after {:.1} s; {rolled} of {N} targets at generation 2",
        applied.as_secs_f64(),
        settled.as_secs_f64()
    );
    for (pid, rss) in before {
        println!(
            "operator process {pid}: RSS {:.1} MiB before, {:.1} MiB after",
            rss as f64 / 1024.0,
            usage(pid).0 as f64 / 1024.0
        );
    }
}
