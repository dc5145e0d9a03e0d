//! Auto-restore: the seed's annotated Deployment waits, with an Event, for the
//! Repository it names; then each new pod restores the annotated directory when it is
//! empty, keeps it when it holds data, and records both in an Event on the pod; removing
//! the annotation takes the init container out.

use std::{path::Path, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod, events::v1::Event};
use kube::api::ListParams;
use stash_tests::kube::TestNs;

use super::support::{back_up, ready, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(120);
const CONTAINER: &str = "stash-auto-restore";

/// The seed's auto-restore Deployment on a hostPath volume at `data`.
fn deployment(ns: &TestNs, data: &Path, annotated: bool) -> String {
    let yaml = seed("18-deployment-stash-demo.yaml", &ns.name).replace(
        "configMap:\n          name: stash-sample-data",
        &format!("hostPath:\n          path: {}", data.display()),
    );
    assert!(yaml.contains("hostPath"), "{yaml}");
    if annotated {
        return yaml;
    }
    yaml.lines()
        .filter(|l| !l.contains("annotations:") && !l.contains("stash.appscode.com/"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn init_containers(d: &Deployment) -> Vec<String> {
    d.spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|c| c.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// The note of the first Event with `reason` about an object whose name passes `about`
/// and that is not among `seen`; its uid is added to `seen`.
async fn event(
    ns: &TestNs,
    reason: &str,
    about: impl Fn(&str) -> bool,
    seen: &mut Vec<String>,
) -> String {
    let events = ns.api::<Event>();
    let (uid, note) = ns
        .eventually(&format!("a new {reason} Event"), WAIT, || {
            let (events, about, seen) = (events.clone(), &about, &*seen);
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find_map(|e| {
                    let uid = e.metadata.uid.clone().unwrap_or_default();
                    let name = e.regarding.as_ref().and_then(|r| r.name.clone());
                    (e.reason.as_deref() == Some(reason)
                        && name.as_deref().is_some_and(about)
                        && !seen.contains(&uid))
                    .then(|| (uid, e.note.unwrap_or_default()))
                })
            }
        })
        .await;
    seen.push(uid);
    note
}

/// Deletes the Deployment's pods, so a new one starts and runs the init container.
async fn restart(ns: &TestNs) {
    let pods = ns.api::<Pod>();
    let list = pods
        .list(&ListParams::default().labels("app=stash-demo"))
        .await
        .expect("pods");
    for p in list.items.into_iter().filter_map(|p| p.metadata.name) {
        let _ = pods.delete(&p, &Default::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_auto_restore_fills_empty_directories_and_keeps_data() {
    let Setup {
        ns, work, repo_dir, ..
    } = setup("op-autorestore").await;
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("deep")).expect("mkdir");
    std::fs::write(data.join("notes.txt"), "one\ntwo\n").expect("write");
    std::fs::write(data.join("deep/blob.bin"), "x".repeat(100_000)).expect("write");
    let mut seen = Vec::new();

    // The seed names Repository demo-backup-repo, which is not there yet.
    ns.apply(&deployment(&ns, &data, true));
    let note = event(&ns, "AutoRestoreNotReady", |n| n == "stash-demo", &mut seen).await;
    assert!(note.contains("\"demo-backup-repo\" not found"), "{note}");
    let d = ns.api::<Deployment>().get("stash-demo").await.expect("get");
    assert!(init_containers(&d).is_empty());

    // It comes (the same storage as the seed's stash-backup-repo): the container goes in.
    ns.apply(&format!(
        "apiVersion: stash.appscode.com/v1alpha2
kind: Repository
metadata:
  name: demo-backup-repo
spec:
  backend:
    local:
      hostPath:
        path: {}
      mountPath: /safe/data
    storageSecretName: gcs-secret
",
        repo_dir.display()
    ));
    ns.wait_for::<Deployment>("stash-demo", "the init container", WAIT, |d| {
        init_containers(d) == [CONTAINER]
    })
    .await;
    let is_pod = |n: &str| n.starts_with("stash-demo-");
    // The first pod with it finds data (and no repository yet) and keeps it.
    let note = event(&ns, "AutoRestore", is_pod, &mut seen).await;
    assert!(note.contains("/source/data: holds data, kept"), "{note}");

    ns.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &ns.name,
    ));
    ready(&ns, "workload-data-backup").await;
    let bs = back_up(&ns, "first", "workload-data-backup").await;
    let phase = bs.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(phase, Some("Succeeded"), "{:?}", bs.status);

    // The data is lost; the next pod brings it back before the workload starts.
    std::fs::remove_dir_all(&data).expect("lose the data");
    std::fs::create_dir_all(&data).expect("an empty volume");
    let note = loop {
        restart(&ns).await;
        let note = event(&ns, "AutoRestore", is_pod, &mut seen).await;
        // A pod of the sidecar's rollout may have started before the data went.
        if !note.contains("kept") {
            break note;
        }
    };
    assert!(note.contains("/source/data: restored 2 files"), "{note}");
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt"))
            .ok()
            .as_deref(),
        Some("one\ntwo\n")
    );
    assert_eq!(
        std::fs::metadata(data.join("deep/blob.bin"))
            .map(|m| m.len())
            .ok(),
        Some(100_000)
    );

    // Data written since the backup is never overwritten by a restart.
    std::fs::write(data.join("notes.txt"), "newer\n").expect("write");
    restart(&ns).await;
    let note = event(&ns, "AutoRestore", is_pod, &mut seen).await;
    assert!(note.contains("kept"), "{note}");
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt"))
            .ok()
            .as_deref(),
        Some("newer\n")
    );

    // Without the annotations, the init container goes; the sidecar stays.
    ns.apply(&deployment(&ns, &data, false));
    let d = ns
        .wait_for::<Deployment>("stash-demo", "no init container", WAIT, |d| {
            init_containers(d).is_empty()
        })
        .await;
    let containers = d.spec.template.spec.expect("pod spec");
    assert!(containers.containers.iter().any(|c| c.name == "stash"));
    event(&ns, "AutoRestoreRemoved", |n| n == "stash-demo", &mut seen).await;
}
