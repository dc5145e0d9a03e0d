//! Bad input on the cluster: each broken reference gets a condition that names it and
//! leaves the workload untouched; a wrong password or an unreachable backend fails
//! the session with the reason; a broken RestoreSession fails without a rollout.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use stash_operator::crd::{
    backup_configuration::BackupConfiguration, restore_session::RestoreSession,
};
use stash_tests::kube::TestNs;

use super::support::{
    assert_no_secret_values, back_up, finish_message, ready, restic, sample_data, seed, setup,
    Setup,
};

const WAIT: Duration = Duration::from_secs(90);

/// Waits until `name`'s condition `type_` is False and returns its message.
async fn refused(ns: &TestNs, name: &str, type_: &str) -> String {
    let bc = ns
        .wait_for::<BackupConfiguration>(name, &format!("{type_} False"), WAIT, |bc| {
            bc.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("NotReady")
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == "False")
            })
        })
        .await;
    let status = bc.status.unwrap_or_default();
    status
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message)
        .unwrap_or_default()
}

fn configuration(name: &str, repository: &str, target: &str) -> String {
    format!(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata:
  name: {name}
spec:
  repository:
    {repository}
  target:
    ref:
      apiVersion: apps/v1
      kind: Deployment
      name: {target}
    paths: [/source/data]
"
    )
}

fn deployment(ns: &TestNs, name: &str) -> String {
    seed("13-deployment-stash-demo.yaml", &ns.name).replace("stash-demo", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_references_are_named_and_change_nothing() {
    // The work directory lives as long as the test.
    let Setup {
        ns,
        repo_dir,
        work: _work,
        ..
    } = setup("op-bad").await;
    ns.apply(&deployment(&ns, "stash-demo"));
    ns.apply(&format!(
        "apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata:
  name: no-secret-repo
spec:
  backend:
    local:
      hostPath: {{path: {}}}
      mountPath: /safe/data
    storageSecretName: absent
",
        repo_dir.display()
    ));
    let before = ns
        .api::<Deployment>()
        .get("stash-demo")
        .await
        .expect("deployment");
    let ns_name = ns.name.clone();
    let cases = [
        (
            "missing-repo",
            "name: nope".to_string(),
            "RepositoryFound",
            format!("Repository \"nope\" not found in namespace \"{ns_name}\""),
        ),
        (
            "missing-secret",
            "name: no-secret-repo".to_string(),
            "BackendSecretFound",
            format!("Secret \"absent\" (storage Secret of Repository \"no-secret-repo\") not found in namespace \"{ns_name}\""),
        ),
        (
            "cross-namespace",
            "name: stash-backup-repo\n    namespace: kube-system".to_string(),
            "RepositoryFound",
            format!("Repository \"stash-backup-repo\" is in namespace \"kube-system\", not the BackupConfiguration's own \"{ns_name}\": references to other namespaces are refused"),
        ),
    ];
    for (name, repository, _, _) in &cases {
        ns.apply(&configuration(name, repository, "stash-demo"));
    }
    ns.apply(&configuration(
        "missing-target",
        "name: stash-backup-repo",
        "ghost",
    ));
    for (name, _, type_, message) in &cases {
        assert_eq!(&refused(&ns, name, type_).await, message, "{name}");
    }
    assert_eq!(
        refused(&ns, "missing-target", "BackupTargetFound").await,
        format!("Deployment \"ghost\" not found in namespace \"{ns_name}\"")
    );
    let after = ns
        .api::<Deployment>()
        .get("stash-demo")
        .await
        .expect("deployment");
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "a broken configuration changed the workload"
    );

    // A RestoreSession naming a missing Repository fails at once, without a rollout.
    ns.apply(
        "apiVersion: stash.appscode.com/v1beta1
kind: RestoreSession
metadata:
  name: restore-nothing
spec:
  repository: {name: nope}
  target:
    ref: {apiVersion: apps/v1, kind: Deployment, name: stash-demo}
    directories: [/source/data]
",
    );
    let rs = ns
        .wait_for::<RestoreSession>("restore-nothing", "a Failed restore", WAIT, |r| {
            r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        })
        .await;
    let conditions = rs.status.unwrap_or_default().conditions;
    let found = conditions
        .iter()
        .find(|c| c.type_ == "RepositoryFound")
        .expect("RepositoryFound");
    assert_eq!(
        (found.status.as_str(), found.message.as_str()),
        (
            "False",
            format!("Repository \"nope\" not found in namespace \"{ns_name}\"").as_str()
        )
    );
    let last = ns
        .api::<Deployment>()
        .get("stash-demo")
        .await
        .expect("deployment");
    assert_eq!(last.metadata.generation, before.metadata.generation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unreachable_backend_fail_the_session() {
    let Setup {
        cluster: _,
        ns,
        work: _work,
        repo_dir,
    } = setup("op-fail").await;
    let init = restic(&repo_dir, &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    sample_data(&ns, &[("notes.txt", "one\n")]);
    // The repository restic made, opened with another password.
    ns.apply(
        "apiVersion: v1
kind: Secret
metadata:
  name: gcs-secret
stringData:
  RESTIC_PASSWORD: wrong-pw-7731
---
apiVersion: v1
kind: Secret
metadata:
  name: s3-secret
stringData:
  RESTIC_PASSWORD: not-secret
  AWS_ACCESS_KEY_ID: nobody
  AWS_SECRET_ACCESS_KEY: s3cr3t-0451
---
apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata:
  name: unreachable
spec:
  backend:
    s3:
      endpoint: http://127.0.0.1:9
      bucket: stash
      prefix: demo
    storageSecretName: s3-secret
",
    );
    ns.apply(&deployment(&ns, "pw-demo"));
    ns.apply(&deployment(&ns, "s3-demo"));
    ns.apply(&configuration(
        "wrong-password",
        "name: stash-backup-repo",
        "pw-demo",
    ));
    ns.apply(&configuration(
        "unreachable",
        "name: unreachable",
        "s3-demo",
    ));
    for name in ["wrong-password", "unreachable"] {
        ready(&ns, name).await;
    }
    let (wrong, unreachable) = tokio::join!(
        back_up(&ns, "wrong-password-1", "wrong-password"),
        back_up(&ns, "unreachable-1", "unreachable"),
    );
    for (session, expected) in [
        (wrong, "wrong password"),
        (unreachable, "http://127.0.0.1:9/stash/demo/config"),
    ] {
        let status = session.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
        let message = finish_message(&status);
        assert!(
            message.starts_with("host-0: ") && message.contains(expected),
            "{message:?} does not name {expected:?}"
        );
        let host = &status.targets[0].stats[0];
        assert_eq!(host.phase.as_deref(), Some("Failed"));
    }
    let check = restic(&repo_dir, &["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_no_secret_values(&ns, &["wrong-pw-7731", "s3cr3t-0451", "not-secret"]);
}
