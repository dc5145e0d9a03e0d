//! Host names as Stash chose them, for the kinds the restore and StatefulSet tests do
//! not cover: a DaemonSet backs up once per node, under the node's name, and a
//! Deployment whose replicas share a ReadWriteMany claim backs it up once, as `host-0`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use stash_tests::kube::TestNs;

use super::support::{back_up, ready, restic, sample_data, setup, Setup};

const WAIT: Duration = Duration::from_secs(120);

fn configuration(name: &str, kind: &str, target: &str, path: &str) -> String {
    format!(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: {name}
spec:
  repository:
    name: stash-backup-repo
  target:
    ref:
      apiVersion: apps/v1
      kind: {kind}
      name: {target}
    paths: [{path}]
"
    )
}

/// A busybox DaemonSet reading the sample data, one pod per node.
const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
spec:
  selector:
    matchLabels: {app: node-agent}
  template:
    metadata:
      labels: {app: node-agent}
    spec:
      containers:
      - name: busybox
        image: busybox
        args: [sleep, '3600']
        volumeMounts:
        - {name: source-data, mountPath: /source/data}
      volumes:
      - name: source-data
        configMap: {name: stash-sample-data}
";

/// Two replicas sharing one ReadWriteMany claim.
const SHARED: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: shared-data
spec:
  accessModes: [ReadWriteMany]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: busybox
        image: busybox
        args: [sleep, '3600']
        volumeMounts:
        - {name: shared, mountPath: /var/www}
      volumes:
      - name: shared
        persistentVolumeClaim: {claimName: shared-data}
";

/// Waits until `count` pods labelled `app` run with the sidecar.
async fn pods_with_sidecar(ns: &TestNs, app: &str, count: usize) -> Vec<Pod> {
    let api = ns.api::<Pod>();
    let lp = ListParams::default().labels(&format!("app={app}"));
    ns.eventually(
        &format!("{count} {app} pods running with the sidecar"),
        WAIT,
        || {
            let api = api.clone();
            let lp = lp.clone();
            async move {
                let pods = api.list(&lp).await.ok()?.items;
                let ready = pods
                    .iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && p.spec
                                .as_ref()
                                .is_some_and(|s| s.containers.iter().any(|c| c.name == "stash"))
                    })
                    .cloned()
                    .collect::<Vec<_>>();
                (ready.len() == count).then_some(ready)
            }
        },
    )
    .await
}

fn snapshot_hosts(repo: &std::path::Path, path: &str) -> Vec<String> {
    let out = restic(repo, &["snapshots", "--json", "--path", path]);
    assert!(
        out.status.success(),
        "restic snapshots: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut hosts: Vec<String> = list
        .iter()
        .map(|s| s["hostname"].as_str().unwrap_or_default().to_string())
        .collect();
    hosts.sort();
    hosts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_backs_up_per_node_and_a_shared_claim_once() {
    let Setup {
        ns,
        work: _work,
        repo_dir,
        ..
    } = setup("op-hosts").await;
    sample_data(&ns, &[("agent.conf", "level=debug\n")]);
    let claim = ns.claim_dir("shared-data");
    std::fs::create_dir_all(&claim).expect("claim dir");
    std::fs::write(claim.join("index.html"), "<h1>shared</h1>\n").expect("shared file");
    ns.apply(DAEMONSET);
    ns.apply(SHARED);
    ns.apply(&configuration(
        "agent-backup",
        "DaemonSet",
        "node-agent",
        "/source/data",
    ));
    ns.apply(&configuration(
        "web-backup",
        "Deployment",
        "web",
        "/var/www",
    ));
    for name in ["agent-backup", "web-backup"] {
        ready(&ns, name).await;
    }
    let agents = pods_with_sidecar(&ns, "node-agent", 2).await;
    let mut nodes: Vec<String> = agents
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"], "one agent per node");
    let web = pods_with_sidecar(&ns, "web", 2).await;

    let (agent, shared) = tokio::join!(
        back_up(&ns, "agent-backup-1", "agent-backup"),
        back_up(&ns, "web-backup-1", "web-backup"),
    );

    let status = agent.status.expect("DaemonSet session status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.targets[0].total_hosts, Some(2), "{status:?}");
    let mut hosts: Vec<String> = status.targets[0]
        .stats
        .iter()
        .map(|h| h.hostname.clone())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["node-1", "node-2"], "the node names are the hosts");
    assert_eq!(
        snapshot_hosts(&repo_dir, "/source/data"),
        ["node-1", "node-2"]
    );

    let status = shared.status.expect("Deployment session status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(status.targets[0].total_hosts, Some(1), "{status:?}");
    assert_eq!(status.targets[0].stats.len(), 1, "{status:?}");
    assert_eq!(status.targets[0].stats[0].hostname, "host-0");
    assert_eq!(
        snapshot_hosts(&repo_dir, "/var/www"),
        ["host-0"],
        "two replicas on one shared claim: backed up once"
    );
    let backed_up: Vec<String> = web
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|pod| {
            ns.log(pod, "stash")
                .contains("web-backup-1: backing up host-0")
        })
        .collect();
    assert_eq!(
        backed_up.len(),
        1,
        "the replica that backed up: {backed_up:?}"
    );

    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}
