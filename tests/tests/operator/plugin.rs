//! `kubectl stash` with the user's own rights: a user whose Role lets them read
//! Repositories and Secrets lists, checks, unlocks and restores snapshots from their
//! machine, but cannot trigger a backup, copy a Repository into a namespace that is not
//! theirs, or claim a PersistentVolume they may not read; each refusal changes nothing.
//! The cluster admin does those three.

use std::{path::Path, process::Output};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Secret};
use kube::{api::DeleteParams, Api};
use stash_operator::crd::{backup_session::BackupSession, repository::Repository};
use stash_tests::kube::{Cluster, TestNs};

use super::support::{restic, root, setup, Setup};

const LIMITED_RBAC: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: limited
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: stash-reader
rules:
- apiGroups: [stash.appscode.com]
  resources: [repositories, backupconfigurations, backupsessions]
  verbs: [get, list]
- apiGroups: ['']
  resources: [secrets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: limited-stash-reader
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: stash-reader}
subjects:
- {kind: ServiceAccount, name: limited}
";

/// A kubeconfig for ServiceAccount `limited` of `ns`: the admin's cluster, a token.
fn limited_kubeconfig(cluster: &Cluster, ns: &TestNs, dir: &Path) -> std::path::PathBuf {
    let token = cluster.kubectl(&["create", "token", "limited", "-n", &ns.name], None);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let path = dir.join("limited.kubeconfig");
    std::fs::copy(&cluster.kubeconfig, &path).expect("copy kubeconfig");
    let path_text = path.to_string_lossy().into_owned();
    for args in [
        vec!["config", "set-credentials", "limited", "--token", &token],
        vec![
            "config",
            "set-context",
            "--current",
            "--user",
            "limited",
            "--namespace",
            &ns.name,
        ],
    ] {
        let mut all = vec!["--kubeconfig", &path_text];
        all.extend(args);
        let out = cluster.kubectl(&all, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    path
}

/// `kubectl stash <args>` (the binary under its plugin name) with `kubeconfig`.
fn plugin(kubeconfig: &Path, args: &[&str]) -> Output {
    let dir = kubeconfig.parent().expect("dir").join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    let link = dir.join("kubectl-stash");
    if !link.exists() {
        std::os::unix::fs::symlink(root().join("target/debug/stash"), &link).expect("symlink");
    }
    std::process::Command::new(link)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RESTIC_PASSWORD")
        .output()
        .expect("run kubectl-stash")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl-stash failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "not refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(words), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_does_what_the_users_rights_allow_and_nothing_else() {
    let Setup {
        cluster,
        ns,
        work,
        repo_dir,
    } = setup("op-plugin").await;
    let other = TestNs::new("op-plugin-to").await;
    // A repository with one snapshot, written by restic.
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("a.txt"), "from restic\n").expect("write");
    assert!(restic(&repo_dir, &["init"]).status.success());
    let backup = restic(
        &repo_dir,
        &[
            "backup",
            "--json",
            "--host",
            "host-0",
            &data.to_string_lossy(),
        ],
    );
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let summary = String::from_utf8_lossy(&backup.stdout);
    let snapshot = summary
        .split("\"snapshot_id\":\"")
        .nth(1)
        .expect("snapshot id")[..8]
        .to_string();
    ns.apply(LIMITED_RBAC);
    ns.apply(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: nightly
spec:
  repository: {name: stash-backup-repo}
  schedule: '0 2 * * *'
  target:
    ref: {apiVersion: apps/v1, kind: Deployment, name: absent}
    paths: [/data]
",
    );
    let limited = limited_kubeconfig(cluster, &ns, work.path());
    let admin = cluster.kubeconfig.clone();
    let n = ns.name.as_str();

    // What the Role allows, from this machine with the Secret the user may read.
    let listing = ok(&plugin(&limited, &["snapshots", "stash-backup-repo"]));
    assert!(listing.contains(&snapshot), "{listing}");
    ok(&plugin(
        &limited,
        &["check", "stash-backup-repo", "--read-data"],
    ));
    ok(&plugin(&limited, &["unlock", "stash-backup-repo"]));
    let target = work.path().join("restored");
    ok(&plugin(
        &limited,
        &[
            "restore",
            "stash-backup-repo",
            "--target",
            &target.to_string_lossy(),
        ],
    ));
    let restored = target.join(data.strip_prefix("/").expect("absolute"));
    assert_eq!(
        std::fs::read_to_string(restored.join("a.txt"))
            .ok()
            .as_deref(),
        Some("from restic\n")
    );
    let described = ok(&plugin(
        &limited,
        &["describe", "backupconfiguration", "nightly"],
    ));
    assert!(
        described.contains(&format!("BackupConfiguration {n}/nightly")),
        "{described}"
    );
    assert!(described.contains("Schedule: 0 2 * * *"), "{described}");

    // What it does not: each refusal is the API server's, and nothing is made.
    refused(&plugin(&limited, &["trigger", "nightly"]), "forbidden");
    let sessions = ns.api::<BackupSession>();
    assert!(sessions
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .is_empty());
    refused(
        &plugin(
            &limited,
            &["copy", "stash-backup-repo", "--to-namespace", &other.name],
        ),
        "forbidden",
    );
    assert!(other
        .api::<Secret>()
        .get_opt("gcs-secret")
        .await
        .expect("get")
        .is_none());
    assert!(other
        .api::<Repository>()
        .get_opt("stash-backup-repo")
        .await
        .expect("get")
        .is_none());
    let pv_name = format!("{n}-pv");
    refused(
        &plugin(&limited, &["backup-pv", &pv_name]),
        &format!("you may not read PersistentVolume {pv_name}"),
    );
    assert!(ns
        .api::<PersistentVolumeClaim>()
        .get_opt(&pv_name)
        .await
        .expect("get")
        .is_none());

    // The admin may.
    let made = ok(&plugin(&admin, &["-n", n, "trigger", "nightly"]));
    assert!(made.starts_with("backupsession/nightly-"), "{made}");
    assert_eq!(
        sessions
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    ok(&plugin(
        &admin,
        &[
            "-n",
            n,
            "copy",
            "stash-backup-repo",
            "--to-namespace",
            &other.name,
        ],
    ));
    let copied = ok(&plugin(
        &admin,
        &["-n", &other.name, "snapshots", "stash-backup-repo"],
    ));
    assert!(
        copied.contains(&snapshot),
        "the copy sees the same snapshots: {copied}"
    );
    ns.cluster.kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1
kind: PersistentVolume
metadata:
  name: {pv_name}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {}}}
",
            work.path().join("pv").display()
        )),
    );
    ok(&plugin(&admin, &["-n", n, "backup-pv", &pv_name]));
    let claim = ns
        .api::<PersistentVolumeClaim>()
        .get(&pv_name)
        .await
        .expect("the claim");
    assert_eq!(
        claim.spec.and_then(|s| s.volume_name).as_deref(),
        Some(pv_name.as_str())
    );
    let _ = Api::<PersistentVolume>::all(ns.client.clone())
        .delete(&pv_name, &DeleteParams::default())
        .await;
}
