//! The Functions and Tasks the operator installs (cluster-scoped, named as in the
//! seed): each Function runs our own image, `stash run-task <step>`, the engine
//! in-process; no restic and no other tool image.
//!
//! A Task is the seed's pair of steps: the work (`volumeBackup`, `volumeRecovery`),
//! which hands its results to the post step through the Job's scratch volume, then the
//! seed's `stashPostBackup`/`stashPostRecovery`, which applies the retention policy and
//! writes the session's and the Repository's status. Kubernetes names are lower case,
//! so the seed's `volumeBackup` is the object `volume-backup` ([`object_name`]); a
//! reference in either spelling finds it. The operator applies these at
//! every start, so an upgrade brings its own image into them; a user's own Function or
//! Task of another name is never touched.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use crate::crd::task::{Function, FunctionCall, FunctionSpec, Task, TaskSpec};

/// Label on every built-in, so users (and the tests) can tell them from their own.
pub const BUILTIN_LABEL: (&str, &str) = ("stash.appscode.com/builtin", "true");

/// The steps `stash run-task` knows, with the Function that runs each.
pub const VOLUME_BACKUP: &str = "volumeBackup";
pub const VOLUME_RECOVERY: &str = "volumeRecovery";
pub const POST_BACKUP: &str = "stashPostBackup";
pub const POST_RECOVERY: &str = "stashPostRecovery";
pub const CLUSTER_BACKUP: &str = "clusterBackup";
pub const PG_BACKUP: &str = "pgBackup";
pub const PG_RECOVERY: &str = "pgRecovery";

/// The object name of a Task or Function the seed spells in camel case
/// (`volumeBackup`), which Kubernetes refuses as a name: `volume-backup`. Valid names
/// (`pvc-backup`, `postgres-backup-11.9`) are their own.
pub fn object_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.trim().chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with(['-', '.']) {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name(name)),
        labels: Some(BTreeMap::from([(
            BUILTIN_LABEL.0.to_string(),
            BUILTIN_LABEL.1.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The seed's metrics arguments, which every built-in step takes: a push happens only
/// when the operator has a Pushgateway (see [`crate::push`]).
const METRICS_ARGS: [&str; 2] = [
    "--metrics.enabled=${enableMetric}",
    "--metrics.pushgateway-url=${pushgatewayURL}",
];

fn function(name: &str, image: &str, args: &[&str]) -> Function {
    Function {
        metadata: meta(name),
        spec: FunctionSpec {
            image: Some(image.to_string()),
            args: args
                .iter()
                .chain(&METRICS_ARGS)
                .map(|a| a.to_string())
                .collect(),
            ..FunctionSpec::default()
        },
    }
}

/// A PostgreSQL step: the seed's whole-container shape, for the credentials it takes
/// from the AppBinding's Secret as environment variables (never through the API).
fn pg_function(name: &str, image: &str, step: &str, session: &str) -> Function {
    let key = |env: &str, key: &str| {
        serde_json::json!({
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": "${DB_SECRET}", "key": key}}
        })
    };
    Function {
        metadata: meta(name),
        spec: FunctionSpec {
            container: Some(serde_json::json!({
                "image": image,
                "args": [
                    "run-task", step, session,
                    "--hostname=${HOSTNAME}",
                    "--output-dir=${OUTPUT_DIR}",
                    "--db-host=${DB_HOST}",
                    "--db-port=${DB_PORT}",
                    "--database=${databases}",
                    METRICS_ARGS[0],
                    METRICS_ARGS[1],
                ],
                "env": [key("PGUSER", "POSTGRES_USER"), key("PGPASSWORD", "POSTGRES_PASSWORD")],
            })),
            ..FunctionSpec::default()
        },
    }
}

/// The built-in Functions, running `image`.
pub fn functions(image: &str) -> Vec<Function> {
    vec![
        pg_function(
            PG_BACKUP,
            image,
            "pg-backup",
            "--backup-session=${BACKUP_SESSION}",
        ),
        pg_function(
            PG_RECOVERY,
            image,
            "pg-restore",
            "--restore-session=${RESTORE_SESSION}",
        ),
        function(
            VOLUME_BACKUP,
            image,
            &[
                "run-task",
                "backup",
                "--backup-session=${BACKUP_SESSION}",
                "--hostname=${HOSTNAME}",
                "--output-dir=${OUTPUT_DIR}",
            ],
        ),
        function(
            POST_BACKUP,
            image,
            &[
                "run-task",
                "post-backup",
                "--backup-session=${BACKUP_SESSION}",
                "--output-dir=${OUTPUT_DIR}",
            ],
        ),
        function(
            CLUSTER_BACKUP,
            image,
            &[
                "run-task",
                "cluster-backup",
                "--backup-session=${BACKUP_SESSION}",
                "--hostname=${HOSTNAME}",
                "--output-dir=${OUTPUT_DIR}",
                "--interim-dir=${INTERIM_DATA_DIR}",
                "--sanitize=${sanitize}",
                "--secrets=${includeSecrets:=false}",
            ],
        ),
        function(
            VOLUME_RECOVERY,
            image,
            &[
                "run-task",
                "restore",
                "--restore-session=${RESTORE_SESSION}",
                "--hostname=${HOSTNAME}",
                "--output-dir=${OUTPUT_DIR}",
            ],
        ),
        function(
            POST_RECOVERY,
            image,
            &[
                "run-task",
                "post-restore",
                "--restore-session=${RESTORE_SESSION}",
                "--output-dir=${OUTPUT_DIR}",
            ],
        ),
    ]
}

fn task(name: &str, steps: &[&str]) -> Task {
    Task {
        metadata: meta(name),
        spec: TaskSpec {
            functions: steps
                .iter()
                .map(|s| FunctionCall {
                    name: object_name(s),
                    inputs: BTreeMap::new(),
                })
                .collect(),
            ..TaskSpec::default()
        },
    }
}

/// The built-in Tasks: the seed's names, and released Stash's for the same work, so
/// manifests of either kind find theirs.
pub fn tasks() -> Vec<Task> {
    let backup = [VOLUME_BACKUP, POST_BACKUP];
    let recovery = [VOLUME_RECOVERY, POST_RECOVERY];
    vec![
        task(VOLUME_BACKUP, &backup),
        task(CLUSTER_BACKUP, &[CLUSTER_BACKUP, POST_BACKUP]),
        task(PG_BACKUP, &[PG_BACKUP, POST_BACKUP]),
        task(PG_RECOVERY, &[PG_RECOVERY, POST_RECOVERY]),
        task(VOLUME_RECOVERY, &recovery),
        task("pvc-backup", &backup),
        task("pvc-restore", &recovery),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names_become_object_names() {
        assert_eq!(object_name("volumeBackup"), "volume-backup");
        assert_eq!(object_name("stashPostRecovery"), "stash-post-recovery");
        assert_eq!(object_name("pvc-backup"), "pvc-backup");
        assert_eq!(object_name("postgres-backup-11.9"), "postgres-backup-11.9");
    }

    #[test]
    fn every_task_step_is_a_builtin_function_of_our_image() {
        let fns = functions("img:1");
        for t in tasks() {
            assert!(!t.spec.functions.is_empty());
            for step in &t.spec.functions {
                let f = fns
                    .iter()
                    .find(|f| f.metadata.name.as_deref() == Some(step.name.as_str()))
                    .unwrap_or_else(|| panic!("{} has no Function", step.name));
                let (image, first) = match &f.spec.container {
                    Some(c) => (
                        c["image"].as_str().map(str::to_string),
                        c["args"][0].as_str().map(str::to_string),
                    ),
                    None => (f.spec.image.clone(), f.spec.args.first().cloned()),
                };
                assert_eq!(image.as_deref(), Some("img:1"));
                assert_eq!(first.as_deref(), Some("run-task"));
            }
        }
    }
}
