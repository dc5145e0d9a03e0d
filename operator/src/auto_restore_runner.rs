//! `stash auto-restore`: the init container of a workload annotated for auto-restore
//! ([`crate::auto_restore`]). At every start of a pod it restores each annotated
//! directory that is missing or empty from the latest snapshot of the pod's host, and
//! records what it did in an Event on the pod.
//!
//! No snapshot yet, or no repository yet (the workload's first start), is not an error: the workload starts on
//! its empty directories. A restore that fails makes the pod fail to start rather than
//! run on empty data, which a backup would then record as the newest state.

use std::{path::PathBuf, sync::Arc};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    runtime::events::{Event, EventType, Recorder, Reporter},
    Client,
};
use stash_agent::restore::{fetch::Progress, restore, RestoreOptions};

use crate::{
    auto_restore::{empty_listing, restores, DirState},
    crd::common::TargetRef,
    restore::{select, HostPlan, SelectError},
    runner::{open_repository, retry_locked, Pod, RunnerError},
};

/// What the init container is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub repository: String,
    pub directories: Vec<String>,
    pub overwrite: bool,
    /// The workload's kind, which names the pod's restic host.
    pub target_kind: String,
    pub pod_uid: Option<String>,
}

/// What became of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Restored { snapshot: String, files: u64 },
    KeptData,
    NoSnapshot,
}

fn state(dir: &str) -> Result<DirState, RunnerError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()
                .map_err(|e| RunnerError::Config(format!("reading directory {dir}: {e}")))?;
            Ok(if empty_listing(names.iter().map(String::as_str)) {
                DirState::Empty
            } else {
                DirState::HasData
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DirState::Missing),
        Err(e) => Err(RunnerError::Config(format!("reading directory {dir}: {e}"))),
    }
}

/// The one-line account of a start, for the Event.
fn summary(host: &str, outcomes: &[(String, Outcome)]) -> String {
    let parts: Vec<String> = outcomes
        .iter()
        .map(|(dir, o)| match o {
            Outcome::Restored { snapshot, files } => {
                format!("{dir}: restored {files} files from snapshot {snapshot}")
            }
            Outcome::KeptData => {
                format!("{dir}: holds data, kept as it is (restore-overwrite is not \"true\")")
            }
            Outcome::NoSnapshot => format!("{dir}: no snapshot of {host} holds it yet"),
        })
        .collect();
    parts.join("; ")
}

/// Restores this pod's directories; see the module docs.
///
/// # Errors
/// The Repository cannot be opened or a restore fails; the error is also published as
/// a Warning Event on the pod.
pub async fn run(client: Client, pod: Pod, opts: Options) -> Result<(), RunnerError> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "stash-auto-restore".into(),
            instance: Some(pod.name.clone()),
        },
    );
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: opts.pod_uid.clone().filter(|u| !u.is_empty()),
        ..ObjectReference::default()
    };
    let publish = |type_, reason: &str, note: String| {
        let (recorder, regarding) = (&recorder, &regarding);
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "AutoRestore".into(),
            secondary: None,
        };
        async move {
            if let Err(e) = recorder.publish(&ev, regarding).await {
                eprintln!("publishing event {}: {e}", ev.reason);
            }
        }
    };
    match restore_all(&client, &pod, &opts).await {
        Ok((host, outcomes)) => {
            let text = summary(&host, &outcomes);
            eprintln!("auto-restore: {text}");
            publish(EventType::Normal, "AutoRestore", text).await;
            Ok(())
        }
        Err(e) => {
            let text = format!("from Repository {:?}: {e}", opts.repository);
            eprintln!("auto-restore failed: {text}");
            publish(EventType::Warning, "AutoRestoreFailed", text).await;
            Err(e)
        }
    }
}

async fn restore_all(
    client: &Client,
    pod: &Pod,
    opts: &Options,
) -> Result<(String, Vec<(String, Outcome)>), RunnerError> {
    let target = TargetRef {
        kind: opts.target_kind.clone(),
        ..TargetRef::default()
    };
    let host = pod.host(Some(&target), None)?;
    let mut todo = Vec::new();
    let mut outcomes = Vec::new();
    for dir in &opts.directories {
        if restores(state(dir)?, opts.overwrite) {
            todo.push(dir.clone());
        } else {
            outcomes.push((dir.clone(), Outcome::KeptData));
        }
    }
    if todo.is_empty() {
        return Ok((host, outcomes));
    }
    let engine = match open_repository(client, pod, &opts.repository, false).await {
        Ok((engine, _)) => engine,
        // Nothing was ever backed up: a first start, with nothing to restore.
        Err(RunnerError::NoRepository { .. }) => {
            outcomes.extend(todo.into_iter().map(|d| (d, Outcome::NoSnapshot)));
            return Ok((host, outcomes));
        }
        Err(e) => return Err(e),
    };
    let lock = retry_locked(|| engine.lock(false)).await?;
    let result = async {
        let snapshots = engine.snapshots().await?;
        for dir in todo {
            let plan = HostPlan {
                source_host: host.clone(),
                paths: vec![dir.clone()],
                ..HostPlan::default()
            };
            let chosen = match select(&plan, &snapshots, &opts.repository) {
                Ok(c) => c,
                Err(SelectError::NoSnapshotOfPath { .. }) => {
                    outcomes.push((dir, Outcome::NoSnapshot));
                    continue;
                }
                Err(e) => return Err(RunnerError::Config(e.to_string())),
            };
            for (id, snapshot) in chosen {
                let tree = snapshot.tree.ok_or_else(|| {
                    RunnerError::Config(format!("snapshot {} has no tree", id.short()))
                })?;
                let restore_opts = RestoreOptions {
                    target: PathBuf::from("/"),
                    include: vec![dir.clone()],
                    exclude: Vec::new(),
                    subpath: None,
                    ..Default::default()
                };
                let s = restore(&engine, tree, &restore_opts, Arc::new(Progress::default()))
                    .await
                    .map_err(|e| {
                        RunnerError::Config(format!(
                            "restoring {dir} from snapshot {}: {e}",
                            id.short()
                        ))
                    })?;
                outcomes.push((
                    dir.clone(),
                    Outcome::Restored {
                        snapshot: id.short(),
                        files: s.files_restored,
                    },
                ));
            }
        }
        Ok(())
    }
    .await;
    lock.release().await?;
    result.map(|()| (host, outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_states_follow_the_file_system() {
        let d = tempfile::tempdir().unwrap();
        let p = |s: &str| d.path().join(s).to_string_lossy().into_owned();
        assert_eq!(state(&p("none")).unwrap(), DirState::Missing);
        std::fs::create_dir_all(d.path().join("fresh/lost+found")).unwrap();
        assert_eq!(state(&p("fresh")).unwrap(), DirState::Empty);
        std::fs::write(d.path().join("fresh/db"), "x").unwrap();
        assert_eq!(state(&p("fresh")).unwrap(), DirState::HasData);
    }

    #[test]
    fn the_event_says_what_each_directory_got() {
        let text = summary(
            "host-0",
            &[
                (
                    "/a".into(),
                    Outcome::Restored {
                        snapshot: "1234abcd".into(),
                        files: 3,
                    },
                ),
                ("/b".into(), Outcome::KeptData),
                ("/c".into(), Outcome::NoSnapshot),
            ],
        );
        assert_eq!(
            text,
            "/a: restored 3 files from snapshot 1234abcd; /b: holds data, kept as it is (restore-overwrite is not \"true\"); /c: no snapshot of host-0 holds it yet"
        );
    }
}
