//! The seed's cluster backup (`task: clusterBackup`, no target): a Job dumps every
//! object its ServiceAccount may list as sanitized YAML into a snapshot laid out by
//! group/kind/namespace/name, and `kubectl apply` of the files recreates the objects in
//! a fresh namespace.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service},
};
use stash_operator::crd::backup_session::BackupSession;
use stash_tests::kube::TestNs;

use super::support::{finished, ready, restic, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(180);

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_cluster_backup_keeps_yaml_that_applies_elsewhere() {
    let Setup {
        cluster,
        ns,
        work,
        repo_dir,
    } = setup("op-cluster").await;
    ns.apply(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
",
    );
    // What the Job's ServiceAccount may read is the user's grant: here, everything
    // but Secrets.
    let reader = format!("stash-cluster-reader-{}", ns.name);
    let grant = cluster.kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {reader}
rules:
- apiGroups: ['*']
  resources: ['*']
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {reader}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {reader}
subjects:
- kind: ServiceAccount
  name: stash-task
  namespace: {}
",
            ns.name
        )),
    );
    assert!(
        grant.status.success(),
        "{}",
        String::from_utf8_lossy(&grant.stderr)
    );
    ns.apply(&seed(
        "10-backupconfiguration-cluster-backup-demo.yaml",
        &ns.name,
    ));
    ready(&ns, "cluster-backup-demo").await;
    super::support::back_up(&ns, "cluster-1", "cluster-backup-demo").await;
    let bs = ns
        .wait_for::<BackupSession>("cluster-1", "a finished backup", WAIT, |s| {
            finished(s.status.as_ref().and_then(|s| s.phase.as_deref()))
        })
        .await;
    let status = bs.status.expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );

    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = work.path().join("restored");
    let restored = restic(
        &repo_dir,
        &[
            "restore",
            "latest",
            "--target",
            out.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let root = out.join("tmp/interim/cluster");
    let files = files_under(&root);
    let ours: Vec<&String> = files
        .iter()
        .filter(|f| f.contains(&format!("/{}/", ns.name)))
        .collect();
    for want in [
        format!("core/ConfigMap/{}/settings.yaml", ns.name),
        format!("core/Service/{}/web.yaml", ns.name),
        format!("apps/Deployment/{}/web.yaml", ns.name),
        format!("core/Namespace/_cluster/{}.yaml", ns.name),
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(&want)),
            "{want} not in the snapshot: {ours:?}"
        );
    }
    assert!(
        !ours
            .iter()
            .any(|f| f.contains("/ReplicaSet/") || f.contains("/Secret/")),
        "objects a controller made, and Secrets, stay out: {ours:?}"
    );
    let deployment =
        std::fs::read_to_string(root.join(format!("apps/Deployment/{}/web.yaml", ns.name)))
            .expect("deployment yaml");
    for gone in [
        "uid:",
        "resourceVersion:",
        "managedFields:",
        "status:",
        "creationTimestamp:",
        "deployment.kubernetes.io",
    ] {
        assert!(!deployment.contains(gone), "{gone} left in:\n{deployment}");
    }

    // The namespace's files apply into a fresh namespace and recreate the objects.
    let fresh = TestNs::new("op-cluster-fresh").await;
    for dir in ["core/ConfigMap", "core/Service", "apps/Deployment"] {
        let path = root.join(dir).join(&ns.name);
        let applied = cluster.kubectl(
            &[
                "apply",
                "-n",
                &fresh.name,
                "-f",
                path.to_str().expect("utf-8"),
            ],
            None,
        );
        assert!(
            applied.status.success(),
            "kubectl apply {dir}: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
    let cm = fresh
        .api::<ConfigMap>()
        .get("settings")
        .await
        .expect("configmap");
    assert_eq!(
        cm.data.and_then(|d| d.get("mode").cloned()).as_deref(),
        Some("fast")
    );
    fresh.api::<Service>().get("web").await.expect("service");
    fresh
        .api::<Deployment>()
        .get("web")
        .await
        .expect("deployment");
    let _ = cluster.kubectl(&["delete", "clusterrole,clusterrolebinding", &reader], None);
}
