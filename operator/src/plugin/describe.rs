//! `kubectl stash describe`: a Stash object's state in a few lines a person reads
//! (phase, conditions, per-host results, a Repository's totals, recent Events), from
//! the object and Events the user may read.

use std::fmt::Write as _;

use anyhow::bail;
use k8s_openapi::api::events::v1::Event;
use kube::{api::ListParams, Api, Client, Resource};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use super::api_error;
use crate::crd::{
    backup_configuration::BackupConfiguration, backup_session::BackupSession,
    repository::Repository, restore_session::RestoreSession,
};

async fn get<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<Value>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let obj = Api::<K>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| api_error(e, &format!("reading {} {ns}/{name}", K::kind(&()))))?;
    Ok(serde_json::to_value(obj)?)
}

/// Prints `kind` `name` of `ns`.
///
/// # Errors
/// An unknown kind, or the object cannot be read.
pub async fn run(client: &Client, ns: &str, kind: &str, name: &str) -> anyhow::Result<i32> {
    let (kind, obj) = match kind.to_ascii_lowercase().as_str() {
        "backupconfiguration" | "backupconfigurations" | "bc" => (
            "BackupConfiguration",
            get::<BackupConfiguration>(client, ns, name).await?,
        ),
        "backupsession" | "backupsessions" | "bs" => {
            ("BackupSession", get::<BackupSession>(client, ns, name).await?)
        }
        "restoresession" | "restoresessions" | "rs" => {
            ("RestoreSession", get::<RestoreSession>(client, ns, name).await?)
        }
        "repository" | "repositories" | "repo" => {
            ("Repository", get::<Repository>(client, ns, name).await?)
        }
        other => bail!(
            "cannot describe {other:?}: use backupconfiguration, backupsession, restoresession or repository"
        ),
    };
    // Events are extra: a user who may not list them still gets the object.
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>();
    print!("{}", render(kind, &obj, &events));
    Ok(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The description of `obj` (a `kind`, as JSON) with its `(type, reason, note)` Events.
pub fn render(kind: &str, obj: &Value, events: &[(String, String, String)]) -> String {
    let mut out = String::new();
    let meta = &obj["metadata"];
    let status = &obj["status"];
    let _ = writeln!(
        out,
        "{kind} {}/{}",
        text(&meta["namespace"]),
        text(&meta["name"])
    );
    if let Some(p) = status["phase"].as_str() {
        let _ = writeln!(out, "Phase: {p}");
    }
    for (label, key) in [
        ("Schedule", "/spec/schedule"),
        ("Repository", "/spec/repository/name"),
        ("Next backup", "/status/nextBackupTime"),
        ("Duration", "/status/sessionDuration"),
        ("Snapshots", "/status/snapshotCount"),
        ("Size", "/status/totalSize"),
        ("Last backup", "/status/lastBackupTime"),
    ] {
        if let Some(v) = obj.pointer(key).filter(|v| !v.is_null()) {
            let _ = writeln!(out, "{label}: {}", text(v));
        }
    }
    if let Some(conditions) = status["conditions"].as_array().filter(|c| !c.is_empty()) {
        out.push_str("Conditions:\n");
        for c in conditions {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                text(&c["type"]),
                text(&c["status"]),
                text(&c["reason"]),
                text(&c["message"])
            );
        }
    }
    let hosts: Vec<&Value> = status["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["stats"].as_array().into_iter().flatten())
        .chain(
            // A RestoreSession's hosts are its top-level stats.
            (kind == "RestoreSession")
                .then(|| status["stats"].as_array())
                .flatten()
                .into_iter()
                .flatten(),
        )
        .collect();
    if !hosts.is_empty() {
        out.push_str("Hosts:\n");
        for h in hosts {
            let _ = write!(
                out,
                "  {} {} {}",
                text(&h["hostname"]),
                text(&h["phase"]),
                text(&h["duration"])
            );
            for s in h["snapshots"].as_array().into_iter().flatten() {
                let _ = write!(
                    out,
                    " [{} {} {}]",
                    text(&s["name"]),
                    text(&s["path"]),
                    text(&s["totalSize"])
                );
            }
            if let Some(e) = h["error"].as_str() {
                let _ = write!(out, " error: {e}");
            }
            out.push('\n');
        }
    }
    if !events.is_empty() {
        out.push_str("Events:\n");
        for (t, reason, note) in events {
            let _ = writeln!(out, "  {t} {reason}: {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_session_says_which_host_failed_and_why() {
        let obj = serde_json::json!({
            "metadata": {"name": "s1", "namespace": "demo"},
            "status": {
                "phase": "Failed", "sessionDuration": "3s",
                "conditions": [{"type": "SessionFinished", "status": "False", "reason": "Failed", "message": "host-0 failed"}],
                "targets": [{"stats": [{"hostname": "host-0", "phase": "Failed", "duration": "1s",
                    "error": "wrong password"}]}]
            }
        });
        let text = render(
            "BackupSession",
            &obj,
            &[(
                "Warning".into(),
                "BackupFailed".into(),
                "host-0: wrong password".into(),
            )],
        );
        assert_eq!(
            text,
            "BackupSession demo/s1\nPhase: Failed\nDuration: 3s\nConditions:\n  SessionFinished False (Failed): host-0 failed\nHosts:\n  host-0 Failed 1s error: wrong password\nEvents:\n  Warning BackupFailed: host-0: wrong password\n"
        );
    }

    #[test]
    fn a_repository_shows_its_totals() {
        let obj = serde_json::json!({
            "metadata": {"name": "r", "namespace": "demo"},
            "spec": {"backend": {}},
            "status": {"snapshotCount": 3, "totalSize": "1.000 MiB"}
        });
        assert_eq!(
            render("Repository", &obj, &[]),
            "Repository demo/r\nSnapshots: 3\nSize: 1.000 MiB\n"
        );
    }
}
