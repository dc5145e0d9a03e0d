//! What the operator's cluster tests share: the seed's manifests, the operator's
//! install, and restic as the oracle.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use std::time::Duration;

use stash_operator::crd::{
    backup_configuration::BackupConfiguration,
    backup_session::{BackupSession, BackupSessionStatus},
};
use stash_tests::kube::{Cluster, TestNs};
use tempfile::TempDir;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

pub fn seed(name: &str, ns: &str) -> String {
    let dir = root().join("tests/fixtures/seed");
    let file = std::fs::read_dir(&dir)
        .expect("seed fixtures")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().ends_with(name))
        })
        .unwrap_or_else(|| panic!("no seed fixture *{name}"));
    std::fs::read_to_string(file)
        .expect("read fixture")
        .replace("namespace: demo", &format!("namespace: {ns}"))
}

/// Installs the CRDs and the operator once per test process, with the Helm chart
/// (`operator/chart`) as a user would. Pods of the stand-in kubelet share the host's
/// network, so each replica listens on a port of its own.
pub fn install_operator(cluster: &Cluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        cluster.install_crds();
        install_chart(cluster, &[]);
    });
}

/// `helm upgrade --install` of the chart as release `stash` in `stash-system`, each
/// replica listening on a port of its own, with more `--set` values `sets`.
pub fn install_chart(cluster: &Cluster, sets: &[&str]) {
    let chart = root().join("operator/chart");
    let mut args = vec![
        "upgrade",
        "--install",
        "stash",
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        "stash-system",
        "--create-namespace",
        "--set",
        "listen=127.0.0.1:0",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = cluster.helm(&args);
    assert!(
        out.status.success(),
        "installing the operator with helm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn restic(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .args(["-r"])
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", "not-secret")
        .env("XDG_CACHE_HOME", repo.join("../restic-cache"))
        .output()
        .expect("run restic")
}

/// The seed's Repository `stash-backup-repo` with a hostPath backend at `dir` instead
/// of GCS, and its Secret `gcs-secret`.
pub fn local_repository(ns: &TestNs, dir: &Path) {
    ns.apply(&format!(
        "apiVersion: stash.appscode.com/v1alpha2
kind: Repository
metadata:
  name: stash-backup-repo
spec:
  backend:
    local:
      hostPath:
        path: {}
      mountPath: /safe/data
    storageSecretName: gcs-secret
---
apiVersion: v1
kind: Secret
metadata:
  name: gcs-secret
stringData:
  RESTIC_PASSWORD: not-secret
",
        dir.display()
    ));
}

/// The phase of a session-like status.
pub fn finished(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed" | "Skipped"))
}

/// Creates BackupSession `name` of configuration `configuration` and waits for its end.
pub async fn back_up(ns: &TestNs, name: &str, configuration: &str) -> BackupSession {
    ns.apply(&format!(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupSession
metadata:
  name: {name}
spec:
  invoker:
    apiGroup: stash.appscode.com
    kind: BackupConfiguration
    name: {configuration}
"
    ));
    ns.wait_for::<BackupSession>(name, "a finished backup", Duration::from_secs(180), |s| {
        finished(s.status.as_ref().and_then(|s| s.phase.as_deref()))
    })
    .await
}

/// Waits until configuration `name` is Ready (its workload carries the sidecar).
pub async fn ready(ns: &TestNs, name: &str) -> BackupConfiguration {
    ns.wait_for::<BackupConfiguration>(
        name,
        "a Ready configuration",
        Duration::from_secs(90),
        |bc| bc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready"),
    )
    .await
}

/// The message of a finished session's `SessionFinished` condition.
pub fn finish_message(status: &BackupSessionStatus) -> &str {
    &status
        .conditions
        .iter()
        .find(|c| c.type_ == "SessionFinished")
        .expect("a SessionFinished condition")
        .message
}

/// What each operator test starts from: the operator on the shared cluster, a
/// namespace of its own, and a work directory whose `repo` the local repository
/// `stash-backup-repo` (with its Secret) points at.
pub struct Setup {
    pub cluster: &'static Cluster,
    pub ns: TestNs,
    pub work: TempDir,
    pub repo_dir: PathBuf,
}

pub async fn setup(prefix: &str) -> Setup {
    let cluster = Cluster::shared();
    install_operator(cluster);
    let ns = TestNs::new(prefix).await;
    let work = tempfile::tempdir().expect("temp dir");
    let repo_dir = work.path().join("repo");
    std::fs::create_dir_all(&repo_dir).expect("repo dir");
    local_repository(&ns, &repo_dir);
    Setup {
        cluster,
        ns,
        work,
        repo_dir,
    }
}

/// The ConfigMap `stash-sample-data` the seed's Deployment mounts, holding `files`.
pub fn sample_data(ns: &TestNs, files: &[(&str, &str)]) {
    let mut yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stash-sample-data\ndata:\n"
        .to_string();
    for (name, text) in files {
        let quoted = serde_json::to_string(text).expect("a string");
        yaml.push_str(&format!("  {name}: {quoted}\n"));
    }
    ns.apply(&yaml);
}

/// Asserts that no secret value appears in the namespace's Events, the status of its
/// Stash resources, its pods' logs or the operator's logs.
pub fn assert_no_secret_values(ns: &TestNs, values: &[&str]) {
    let kinds = "events,repositories,backupconfigurations,backupsessions,restoresessions";
    let out = ns
        .cluster
        .kubectl(&["get", kinds, "-n", &ns.name, "-o", "yaml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = vec![(
        "Events and resources".to_string(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )];
    let logs = ns.cluster.kubelet_state.join("logs");
    for dir in [logs.join(&ns.name), logs.join("stash-system")] {
        for pod in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for log in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                seen.push((log.path().display().to_string(), text));
            }
        }
    }
    assert!(seen.len() > 2, "no logs found");
    for (what, text) in seen {
        for value in values {
            assert!(
                !text.contains(value),
                "{what} shows the secret value {value:?}"
            );
        }
    }
}

/// The processes of this machine whose command line holds arguments starting with
/// `words`, in a row.
pub fn processes(words: &[&str]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.windows(words.len())
                .any(|w| w.iter().zip(words).all(|(a, b)| a.starts_with(b)))
                .then_some(pid)
        })
        .collect()
}

/// The `/metrics` text of operator pod `pod` (the Lease holder serves the backup
/// metrics), at the address its log announces: replicas share the host's network, so
/// each listens on a port of its own.
pub fn operator_metrics(cluster: &Cluster, pod: &str) -> Option<String> {
    use std::io::{Read, Write};
    let log = cluster
        .kubelet_state
        .join("logs/stash-system")
        .join(pod)
        .join("operator.log");
    let log = std::fs::read_to_string(log).ok()?;
    let addr = log
        .lines()
        .rev()
        .find_map(|l| l.split("serving /healthz and /metrics on ").nth(1))?
        .split_whitespace()
        .next()?
        .to_string();
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}
