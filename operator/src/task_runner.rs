//! `stash run-task <step>`: the steps of the built-in Tasks ([`crate::builtin`]), each a
//! container of a backup or restore Job, the engine in-process.
//!
//! The work step (`backup`, `restore`) claims its host on the session, does the work
//! and hands its results to the post step (`post-backup`, `post-restore`) as a JSON
//! file on the Job's scratch volume; the post step applies the retention policy and
//! records the results on the session and the Repository. A work step that fails
//! records its host Failed with the reason itself and exits non-zero, so the post step
//! never runs and the session ends at once with that reason.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use kube::{Api, Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::{
    backup_runner::{apply_retention, backup_directories, write_repository_status},
    controller::invoker_name,
    crd::{
        backup_configuration::BackupConfiguration, backup_session::BackupSession,
        restore_session::RestoreSession,
    },
    pg_runner::{self, Database},
    restore::{self, Claim, HostResult},
    restore_runner::restore_host,
    runner::{open_repository, retry_locked, update_status, Pod, RunnerError},
    session::{self, DirectoryResult},
};

/// One step of a Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Backup {
        session: String,
        host: String,
        output_dir: PathBuf,
    },
    PostBackup {
        session: String,
        output_dir: PathBuf,
    },
    /// A snapshot of the cluster's objects as YAML, dumped under `interim_dir`.
    ClusterBackup {
        session: String,
        host: String,
        output_dir: PathBuf,
        interim_dir: PathBuf,
        secrets: bool,
    },
    /// A PostgreSQL dump streamed into a snapshot.
    PgBackup {
        session: String,
        host: String,
        output_dir: PathBuf,
        db: Database,
    },
    Restore {
        session: String,
        host: String,
        output_dir: PathBuf,
    },
    /// A PostgreSQL dump streamed from a snapshot into psql.
    PgRestore {
        session: String,
        host: String,
        output_dir: PathBuf,
        db: Database,
    },
    PostRestore {
        session: String,
        output_dir: PathBuf,
    },
}

/// What the work step hands to the post step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Report {
    host: String,
    took: Duration,
    #[serde(default)]
    directories: Vec<DirectoryResult>,
}

const BACKUP_REPORT: &str = "backup.json";
const RESTORE_REPORT: &str = "restore.json";

fn write_report(dir: &Path, file: &str, report: &Report) -> Result<(), RunnerError> {
    let fail = |e: &dyn std::fmt::Display| {
        RunnerError::Config(format!("writing {}: {e}", dir.join(file).display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| fail(&e))?;
    std::fs::write(dir.join(file), json).map_err(|e| fail(&e))
}

fn read_report(dir: &Path, file: &str) -> Result<Report, RunnerError> {
    let path = dir.join(file);
    let text = std::fs::read(&path).map_err(|e| {
        RunnerError::Config(format!(
            "reading {} (the work step's results): {e}",
            path.display()
        ))
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| RunnerError::Config(format!("{} is not a step report: {e}", path.display())))
}

/// Runs `step`; returns the process's exit code (1: the step failed and said why on
/// its session).
///
/// # Errors
/// The session cannot be read or written.
pub async fn run(client: Client, pod: Pod, step: Step) -> Result<i32, RunnerError> {
    match step {
        Step::Backup {
            session,
            host,
            output_dir,
        } => backup(&client, &pod, &session, &host, &output_dir, Source::Target).await,
        Step::ClusterBackup {
            session,
            host,
            output_dir,
            interim_dir,
            secrets,
        } => {
            let source = Cluster {
                dir: interim_dir.join("cluster"),
                secrets,
            };
            backup(
                &client,
                &pod,
                &session,
                &host,
                &output_dir,
                Source::Cluster(source),
            )
            .await
        }
        Step::PgBackup {
            session,
            host,
            output_dir,
            db,
        } => {
            backup(
                &client,
                &pod,
                &session,
                &host,
                &output_dir,
                Source::Postgres(db),
            )
            .await
        }
        Step::PgRestore {
            session,
            host,
            output_dir,
            db,
        } => restore(&client, &pod, &session, &host, &output_dir, Some(&db)).await,
        Step::PostBackup {
            session,
            output_dir,
        } => post_backup(&client, &pod, &session, &output_dir).await,
        Step::Restore {
            session,
            host,
            output_dir,
        } => restore(&client, &pod, &session, &host, &output_dir, None).await,
        Step::PostRestore {
            session,
            output_dir,
        } => post_restore(&client, &pod, &session, &output_dir).await,
    }
}

async fn configuration(
    client: &Client,
    pod: &Pod,
    bs: &BackupSession,
) -> Result<BackupConfiguration, RunnerError> {
    let name = invoker_name(bs).ok_or_else(|| {
        RunnerError::Config(format!(
            "BackupSession {:?} names no BackupConfiguration",
            bs.name_any()
        ))
    })?;
    Ok(
        Api::<BackupConfiguration>::namespaced(client.clone(), &pod.namespace)
            .get(name)
            .await?,
    )
}

/// Records `host` Failed on the backup session with `why`.
/// The configuration, when it could be read, gets the result pushed too.
#[allow(clippy::too_many_arguments)]
async fn fail_backup(
    api: &Api<BackupSession>,
    pod: &Pod,
    session: &str,
    host: &str,
    bc: Option<&BackupConfiguration>,
    done: &[DirectoryResult],
    why: String,
    took: Duration,
) -> Result<i32, RunnerError> {
    eprintln!("BackupSession {session}: {host} failed: {why}");
    let repository = bc.map(|bc| bc.spec.repository.name.as_str()).unwrap_or("");
    let stats = session::host_stats(host, repository, done, Some(why), took);
    let seed = session::seed_stats(host, done);
    update_status(api, session, |s| {
        session::record(s, stats.clone(), seed.clone());
        Some(())
    })
    .await?;
    if let Some(bc) = bc {
        crate::push::backup_result(pod, bc, &stats).await;
    }
    Ok(1)
}

/// What a backup step takes.
enum Source {
    /// The configuration's target's paths (a claim).
    Target,
    Cluster(Cluster),
    Postgres(Database),
}

/// A cluster backup's source: the objects, dumped into `dir` first.
struct Cluster {
    dir: PathBuf,
    secrets: bool,
}

/// The paths a backup takes: the configuration's target's, or the cluster's objects
/// freshly dumped.
async fn source_paths(
    client: &Client,
    pod: &Pod,
    bc: &BackupConfiguration,
    cluster: Option<&Cluster>,
) -> Result<Vec<String>, RunnerError> {
    let Some(c) = cluster else {
        return Ok(bc.spec.target.clone().unwrap_or_default().claim_paths());
    };
    if c.dir.exists() {
        std::fs::remove_dir_all(&c.dir)
            .map_err(|e| RunnerError::Config(format!("emptying {}: {e}", c.dir.display())))?;
    }
    let dumped = crate::cluster_dump::dump(client, &pod.namespace, &c.dir, c.secrets).await?;
    let refused = if dumped.refused.is_empty() {
        String::new()
    } else {
        format!("; not allowed to list: {}", dumped.refused.join(", "))
    };
    eprintln!(
        "dumped {} objects into {}{refused}",
        dumped.objects,
        c.dir.display()
    );
    Ok(vec![c.dir.to_string_lossy().into_owned()])
}

async fn backup(
    client: &Client,
    pod: &Pod,
    session: &str,
    host: &str,
    output_dir: &Path,
    source: Source,
) -> Result<i32, RunnerError> {
    let api: Api<BackupSession> = Api::namespaced(client.clone(), &pod.namespace);
    let bs = api.get(session).await?;
    let claimed = update_status(&api, session, |s| session::claim(s, host).then_some(())).await?;
    if claimed.is_none() {
        eprintln!("BackupSession {session}: {host} is not this Job's to back up (claimed already, or the session is not running)");
        return Ok(1);
    }
    let started = Instant::now();
    let bc = match configuration(client, pod, &bs).await {
        Ok(bc) => bc,
        Err(e) => {
            return fail_backup(
                &api,
                pod,
                session,
                host,
                None,
                &[],
                e.to_string(),
                started.elapsed(),
            )
            .await
        }
    };
    let repository = bc.spec.repository.name.clone();
    let target = bc.spec.target.clone().unwrap_or_default();
    let cluster = match &source {
        Source::Cluster(c) => Some(c),
        _ => None,
    };
    let paths = match source_paths(client, pod, &bc, cluster).await {
        Ok(p) => p,
        Err(e) => {
            let took = started.elapsed();
            return fail_backup(
                &api,
                pod,
                session,
                host,
                Some(&bc),
                &[],
                e.to_string(),
                took,
            )
            .await;
        }
    };
    eprintln!(
        "BackupSession {session}: backing up {host}: {}",
        paths.join(", ")
    );
    let outcome = match open_repository(client, pod, &repository, true).await {
        Ok((engine, _)) => match &source {
            Source::Postgres(db) => pg_runner::backup(&engine, db, host)
                .await
                .map(|r| vec![r])
                .map_err(|e| (Vec::new(), e)),
            _ => backup_directories(&engine, &paths, host, &target.exclude).await,
        },
        Err(e) => Err((Vec::new(), e)),
    };
    let report = match outcome {
        Ok(directories) => Report {
            host: host.to_string(),
            took: started.elapsed(),
            directories,
        },
        Err((done, e)) => {
            return fail_backup(
                &api,
                pod,
                session,
                host,
                Some(&bc),
                &done,
                e.to_string(),
                started.elapsed(),
            )
            .await
        }
    };
    if let Err(e) = write_report(output_dir, BACKUP_REPORT, &report) {
        let took = started.elapsed();
        return fail_backup(
            &api,
            pod,
            session,
            host,
            Some(&bc),
            &report.directories,
            e.to_string(),
            took,
        )
        .await;
    }
    eprintln!(
        "BackupSession {session}: {host}: {} snapshot(s) taken",
        report.directories.len()
    );
    Ok(0)
}

async fn post_backup(
    client: &Client,
    pod: &Pod,
    session: &str,
    output_dir: &Path,
) -> Result<i32, RunnerError> {
    let api: Api<BackupSession> = Api::namespaced(client.clone(), &pod.namespace);
    let report = read_report(output_dir, BACKUP_REPORT)?;
    let host = report.host.clone();
    let started = Instant::now();
    let bs = api.get(session).await?;
    let bc = configuration(client, pod, &bs).await?;
    let repository = bc.spec.repository.name.clone();
    let after = async {
        let (engine, repo) = open_repository(client, pod, &repository, false).await?;
        let removed = match &bc.spec.retention_policy {
            Some(p) => apply_retention(&engine, p, &host).await?,
            None => 0,
        };
        if let Err(e) = write_repository_status(client, &engine, &repo, removed).await {
            eprintln!("warning: updating Repository {}: {e}", repo.name_any());
        }
        Ok::<_, RunnerError>(())
    }
    .await;
    let took = report.took + started.elapsed();
    let error = after
        .err()
        .map(|e| format!("applying the retention policy: {e}"));
    let stats = session::host_stats(&host, &repository, &report.directories, error.clone(), took);
    let seed = session::seed_stats(&host, &report.directories);
    update_status(&api, session, |s| {
        session::record(s, stats.clone(), seed.clone());
        Some(())
    })
    .await?;
    crate::push::backup_result(pod, &bc, &stats).await;
    match error {
        Some(e) => {
            eprintln!("BackupSession {session}: {host} failed: {e}");
            Ok(1)
        }
        None => {
            eprintln!("BackupSession {session}: {host} done");
            Ok(0)
        }
    }
}

/// Restores the dump `host`'s rule picks (the latest one by default) into `db`.
async fn restore_database(
    client: &Client,
    pod: &Pod,
    rs: &RestoreSession,
    host: &str,
    db: &Database,
) -> Result<(), RunnerError> {
    let plan = restore::plan(&rs.spec, host).unwrap_or_else(|| restore::HostPlan {
        source_host: host.to_string(),
        ..restore::HostPlan::default()
    });
    let repository = &rs.spec.repository.name;
    let (engine, _) = open_repository(client, pod, repository, false).await?;
    let lock = retry_locked(|| engine.lock(false)).await?;
    let result = async {
        let snapshots = engine.snapshots().await?;
        let chosen = restore::select(&plan, &snapshots, repository)
            .map_err(|e| RunnerError::Config(e.to_string()))?;
        let (id, snapshot) = chosen.last().ok_or_else(|| {
            RunnerError::Config(format!(
                "no snapshot of host {:?} to restore",
                plan.source_host
            ))
        })?;
        let tree = snapshot
            .tree
            .ok_or_else(|| RunnerError::Config(format!("snapshot {} has no tree", id.short())))?;
        let bytes = pg_runner::restore(&engine, db, tree).await?;
        eprintln!(
            "restored snapshot {} into {}:{} ({bytes} bytes of SQL)",
            id.short(),
            db.host,
            db.port
        );
        Ok(())
    }
    .await;
    lock.release().await?;
    result
}

async fn restore(
    client: &Client,
    pod: &Pod,
    session: &str,
    host: &str,
    output_dir: &Path,
    db: Option<&Database>,
) -> Result<i32, RunnerError> {
    let api: Api<RestoreSession> = Api::namespaced(client.clone(), &pod.namespace);
    let rs = api.get(session).await?;
    let mut seen = Claim::NotRunning;
    update_status(&api, session, |s| {
        seen = restore::claim(s, host, &pod.name);
        (seen == Claim::Mine).then_some(())
    })
    .await?;
    if seen != Claim::Mine {
        eprintln!("RestoreSession {session}: {host} is not this Job's to restore ({seen:?})");
        return Ok(1);
    }
    let started = Instant::now();
    eprintln!("RestoreSession {session}: restoring {host}");
    let restored = match db {
        Some(db) => restore_database(client, pod, &rs, host, db).await,
        None => restore_host(client, pod, &rs, host).await,
    };
    if let Err(e) = restored {
        let result = HostResult {
            took: started.elapsed(),
            error: Some(e.to_string()),
        };
        eprintln!("RestoreSession {session}: {host} failed: {e}");
        update_status(&api, session, |s| {
            restore::record(s, host, &pod.name, result.clone());
            Some(())
        })
        .await?;
        crate::push::restore_result(pod, &rs, host, &result).await;
        return Ok(1);
    }
    let report = Report {
        host: host.to_string(),
        took: started.elapsed(),
        directories: Vec::new(),
    };
    write_report(output_dir, RESTORE_REPORT, &report)?;
    Ok(0)
}

async fn post_restore(
    client: &Client,
    pod: &Pod,
    session: &str,
    output_dir: &Path,
) -> Result<i32, RunnerError> {
    let api: Api<RestoreSession> = Api::namespaced(client.clone(), &pod.namespace);
    let report = read_report(output_dir, RESTORE_REPORT)?;
    let result = HostResult {
        took: report.took,
        error: None,
    };
    update_status(&api, session, |s| {
        restore::record(s, &report.host, &pod.name, result.clone());
        Some(())
    })
    .await?;
    // The result is recorded: a push that cannot read the session is a warning, as
    // a failed push is, never a failed step.
    if pod.metrics.is_some() {
        match api.get(session).await {
            Ok(rs) => crate::push::restore_result(pod, &rs, &report.host, &result).await,
            Err(e) => {
                eprintln!("warning: reading RestoreSession {session} to push its metrics: {e}")
            }
        }
    }
    eprintln!("RestoreSession {session}: {} restored", report.host);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_the_scratch_volume() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            host: "host-0".into(),
            took: Duration::from_millis(1500),
            directories: vec![DirectoryResult {
                path: "/source/data".into(),
                snapshot: "0123abcd".into(),
                total_files: 3,
                ..DirectoryResult::default()
            }],
        };
        write_report(&dir.path().join("out"), BACKUP_REPORT, &report).unwrap();
        assert_eq!(
            read_report(&dir.path().join("out"), BACKUP_REPORT).unwrap(),
            report
        );
        let e = read_report(dir.path(), RESTORE_REPORT).unwrap_err();
        assert!(
            e.to_string()
                .contains("restore.json (the work step's results)"),
            "{e}"
        );
        std::fs::write(dir.path().join(RESTORE_REPORT), b"{").unwrap();
        let e = read_report(dir.path(), RESTORE_REPORT).unwrap_err();
        assert!(e.to_string().contains("is not a step report"), "{e}");
    }
}
