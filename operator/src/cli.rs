//! The operator's commands in the `stash` binary (beside the engine's restic verbs).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use stash_agent::cli::Global;

/// Commands added to the engine's.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The Kubernetes operator and its install.
    Operator(OperatorArgs),
    /// The backup sidecar in a workload's pod (added by the operator).
    Sidecar(SidecarArgs),
    /// The restore init container in a workload's pod (added by the operator).
    RestoreInit(RestoreInitArgs),
    /// The auto-restore init container of a workload annotated
    /// `stash.appscode.com/restorepolicy: OnRestart` (added by the operator).
    AutoRestore(AutoRestoreArgs),
    /// `kubectl stash`: Stash objects with your own kubeconfig and rights (install
    /// this binary as `kubectl-stash` on your PATH).
    Kubectl(crate::plugin::PluginArgs),
    /// One step of a backup or restore Job (the built-in Functions run these).
    RunTask(RunTaskArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunTaskArgs {
    #[command(subcommand)]
    step: TaskStep,
    #[command(flatten)]
    pod: PodArgs,
}

#[derive(Debug, Subcommand)]
enum TaskStep {
    /// Back up the target's paths for a BackupSession; results go to --output-dir.
    Backup {
        #[arg(long = "backup-session")]
        session: String,
        /// The restic host of the snapshots.
        #[arg(long)]
        hostname: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
    },
    /// Back up every object the Job may list, as sanitized YAML, for a BackupSession.
    ClusterBackup {
        #[arg(long = "backup-session")]
        session: String,
        #[arg(long)]
        hostname: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
        /// Where the objects are written before they are backed up.
        #[arg(long = "interim-dir")]
        interim_dir: PathBuf,
        /// Include Secrets.
        #[arg(long, default_value = "false", action = clap::ArgAction::Set)]
        secrets: bool,
        /// Strip server-set fields (always done; accepted for the seed's Function).
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        sanitize: bool,
    },
    /// Stream a PostgreSQL dump (pg_dump of --database, else pg_dumpall) into a
    /// snapshot for a BackupSession; PGUSER and PGPASSWORD come from the environment.
    PgBackup {
        #[arg(long = "backup-session")]
        session: String,
        #[arg(long)]
        hostname: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stream a RestoreSession's dump into psql.
    PgRestore {
        #[arg(long = "restore-session")]
        session: String,
        #[arg(long)]
        hostname: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Apply the retention policy and record the backup step's results.
    PostBackup {
        #[arg(long = "backup-session")]
        session: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
    },
    /// Restore a RestoreSession's snapshots into the Job's volumes.
    Restore {
        #[arg(long = "restore-session")]
        session: String,
        /// The restoring host (the rule it takes).
        #[arg(long)]
        hostname: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
    },
    /// Record the restore step's result.
    PostRestore {
        #[arg(long = "restore-session")]
        session: String,
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
    },
}

/// A PostgreSQL server and database.
#[derive(Debug, clap::Args)]
struct DbArgs {
    /// The server's host (an AppBinding's Service).
    #[arg(long = "db-host")]
    host: String,
    #[arg(long = "db-port", default_value = "5432")]
    port: String,
    /// One database; empty: every database.
    #[arg(long, default_value = "")]
    database: String,
}

impl From<DbArgs> for crate::pg_runner::Database {
    fn from(a: DbArgs) -> Self {
        crate::pg_runner::Database {
            host: a.host,
            port: a.port,
            name: a.database,
        }
    }
}

impl TaskStep {
    /// The step as the runner takes it, and the container name it runs as (its lock slot).
    fn into_step(self) -> (crate::task_runner::Step, &'static str) {
        use crate::task_runner::Step;
        match self {
            TaskStep::Backup {
                session,
                hostname,
                output_dir,
            } => (
                Step::Backup {
                    session,
                    host: hostname,
                    output_dir,
                },
                "volume-backup",
            ),
            TaskStep::ClusterBackup {
                session,
                hostname,
                output_dir,
                interim_dir,
                secrets,
                sanitize: _,
            } => (
                Step::ClusterBackup {
                    session,
                    host: hostname,
                    output_dir,
                    interim_dir,
                    secrets,
                },
                "cluster-backup",
            ),
            TaskStep::PgBackup {
                session,
                hostname,
                output_dir,
                db,
            } => (
                Step::PgBackup {
                    session,
                    host: hostname,
                    output_dir,
                    db: db.into(),
                },
                "pg-backup",
            ),
            TaskStep::PgRestore {
                session,
                hostname,
                output_dir,
                db,
            } => (
                Step::PgRestore {
                    session,
                    host: hostname,
                    output_dir,
                    db: db.into(),
                },
                "pg-recovery",
            ),
            TaskStep::PostBackup {
                session,
                output_dir,
            } => (
                Step::PostBackup {
                    session,
                    output_dir,
                },
                "stash-post-backup",
            ),
            TaskStep::Restore {
                session,
                hostname,
                output_dir,
            } => (
                Step::Restore {
                    session,
                    host: hostname,
                    output_dir,
                },
                "volume-recovery",
            ),
            TaskStep::PostRestore {
                session,
                output_dir,
            } => (
                Step::PostRestore {
                    session,
                    output_dir,
                },
                "stash-post-recovery",
            ),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Print the CustomResourceDefinitions as YAML (`kubectl apply --server-side -f -`).
    Crds,
    /// Run the controllers (in-cluster configuration, or KUBECONFIG outside a pod).
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "stash-system")]
    namespace: String,
    /// This replica's name in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "STASH_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Act only on objects in these namespaces (comma-separated; default: all). The
    /// operator then needs rights in these namespaces only, plus reading the
    /// cluster-scoped Functions, Tasks and templates.
    #[arg(
        long = "watch-namespaces",
        env = "STASH_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    watch_namespaces: Vec<String>,
    /// A Prometheus Pushgateway that sidecars, init containers and Jobs push their
    /// hosts' results to (the seed's `pushgatewayURL`); the operator's own /metrics
    /// serves the same figures either way.
    #[arg(long = "pushgateway-url", env = "STASH_PUSHGATEWAY_URL")]
    pushgateway_url: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
    /// The BackupConfiguration this sidecar serves.
    #[arg(long = "backup-configuration")]
    configuration: String,
    #[command(flatten)]
    pod: PodArgs,
}

#[derive(Debug, clap::Args)]
pub struct RestoreInitArgs {
    /// The RestoreSession this init container serves.
    #[arg(long = "restore-session")]
    restore_session: String,
    #[command(flatten)]
    pod: PodArgs,
}

#[derive(Debug, clap::Args)]
pub struct AutoRestoreArgs {
    /// The Repository, in the pod's namespace.
    #[arg(long)]
    repository: String,
    /// A directory to restore when it is missing or empty (repeatable).
    #[arg(long = "directory", required = true)]
    directories: Vec<String>,
    /// Restore into directories that hold data too.
    #[arg(long)]
    overwrite: bool,
    /// The workload's kind, which names the pod's restic host.
    #[arg(long = "target-kind", default_value = "Deployment")]
    target_kind: String,
    #[command(flatten)]
    pod: PodArgs,
}

/// Which pod a sidecar or init container runs in, from the downward API.
#[derive(Debug, clap::Args)]
pub struct PodArgs {
    /// The pod's namespace (its configuration's or session's).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// The pod's name (a StatefulSet's host comes from its ordinal).
    #[arg(long = "pod", env = "POD_NAME")]
    name: String,
    /// The node's name (a DaemonSet's host).
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node: String,
    /// The pod's UID: with the container's name, the slot its locks carry, so a
    /// restarted container recognizes the locks its killed predecessor left.
    #[arg(long = "pod-uid", env = "POD_UID")]
    pod_uid: Option<String>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// The seed's Function arguments for pushing results to a Pushgateway (released
/// Stash's sidecar spells them `--metrics-enabled` and `--pushgateway-url`).
#[derive(Debug, clap::Args)]
struct MetricsArgs {
    /// Push this host's result to the Pushgateway.
    #[arg(
        long = "metrics.enabled",
        alias = "metrics-enabled",
        default_value = "false",
        default_missing_value = "true",
        num_args = 0..=1,
        action = clap::ArgAction::Set,
        global = true
    )]
    enabled: bool,
    /// The Pushgateway's URL (`http://host:9091`).
    #[arg(
        long = "metrics.pushgateway-url",
        alias = "pushgateway-url",
        default_value = "",
        global = true
    )]
    pushgateway_url: String,
    /// More grouping labels, `name=value,...`.
    #[arg(long = "metrics.labels", default_value = "", global = true)]
    labels: String,
}

impl PodArgs {
    /// The pod, as `container` of it: tells the engine which one-at-a-time slot this
    /// process is (see [`stash_agent::repository::lock::set_container`]).
    ///
    /// # Errors
    /// Unusable `--metrics.*` flags.
    fn claim(self, container: &str, global: &Global) -> anyhow::Result<crate::runner::Pod> {
        let m = &self.metrics;
        let metrics =
            crate::push::Pushgateway::from_flags(m.enabled, &m.pushgateway_url, &m.labels)?;
        if let Some(uid) = self.pod_uid.filter(|u| !u.is_empty()) {
            stash_agent::repository::lock::set_container(format!("{uid}/{container}"));
        }
        Ok(crate::runner::Pod {
            namespace: self.namespace,
            name: self.name,
            node: self.node,
            secret_dir: secret_dir(global),
            compression: global.compression(),
            metrics,
        })
    }
}

fn secret_dir(global: &Global) -> PathBuf {
    global
        .secret_dir()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::pod_template::SECRET_DIR))
}

async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster configuration or KUBECONFIG)")
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

impl stash_agent::cli::Extension for Command {
    fn handles_signals(&self) -> bool {
        matches!(
            self,
            Command::Operator(OperatorArgs {
                command: OperatorCommand::Run(_)
            })
        )
    }

    async fn run(self, global: Global) -> anyhow::Result<i32> {
        match self {
            Command::Operator(OperatorArgs {
                command: OperatorCommand::Crds,
            }) => {
                print!("{}", crate::crd::all_yaml()?);
                Ok(0)
            }
            Command::Operator(OperatorArgs {
                command: OperatorCommand::Run(a),
            }) => {
                let identity = a.identity.unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        stash_agent::repository::hostname(),
                        std::process::id()
                    )
                });
                let opts = crate::controller::RunOptions {
                    namespace: a.namespace,
                    identity,
                    listen: a.listen,
                    namespaces: a.watch_namespaces,
                    pushgateway: a.pushgateway_url.filter(|u| !u.trim().is_empty()),
                };
                crate::controller::run(client().await?, opts, terminated())
                    .await
                    .map_err(anyhow::Error::msg)?;
                Ok(0)
            }
            Command::Sidecar(a) => {
                let opts = crate::backup_runner::SidecarOptions {
                    configuration: a.configuration,
                    pod: a.pod.claim(crate::sidecar::CONTAINER, &global)?,
                };
                crate::backup_runner::run(client().await?, opts).await?;
                Ok(0)
            }
            Command::RestoreInit(a) => {
                let pod = a.pod.claim(crate::init_container::CONTAINER, &global)?;
                crate::restore_runner::run(client().await?, pod, &a.restore_session).await?;
                Ok(0)
            }
            Command::AutoRestore(a) => {
                let opts = crate::auto_restore_runner::Options {
                    repository: a.repository,
                    directories: a.directories,
                    overwrite: a.overwrite,
                    target_kind: a.target_kind,
                    pod_uid: a.pod.pod_uid.clone(),
                };
                let pod = a.pod.claim(crate::auto_restore::CONTAINER, &global)?;
                crate::auto_restore_runner::run(client().await?, pod, opts).await?;
                Ok(0)
            }
            Command::Kubectl(a) => crate::plugin::run(a).await,
            Command::RunTask(a) => {
                let (step, container) = a.step.into_step();
                let pod = a.pod.claim(container, &global)?;
                Ok(crate::task_runner::run(client().await?, pod, step).await?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_metrics_flags_are_taken_before_and_after_a_step() {
        let cmd = stash_agent::cli::Cli::<super::Command>::command();
        let step = [
            "stash",
            "run-task",
            "--namespace=n",
            "--pod=p",
            "backup",
            "--backup-session=s",
            "--hostname=h",
            "--output-dir=/o",
        ];
        let seeds = [
            "--metrics.enabled=true",
            "--metrics.pushgateway-url=http://pg:9091",
        ];
        let released = ["--metrics-enabled", "--pushgateway-url=http://pg:9091"];
        for flags in [&seeds[..], &released[..], &["--metrics.labels=\"a=b\""][..]] {
            let args = step.iter().chain(flags);
            if let Err(e) = cmd.clone().try_get_matches_from(args) {
                panic!("{flags:?}: {e}");
            }
        }
        let sidecar = [
            "stash",
            "sidecar",
            "--namespace=n",
            "--pod=p",
            "--backup-configuration=c",
        ];
        let args = sidecar.iter().chain(&seeds);
        assert!(cmd.clone().try_get_matches_from(args).is_ok());
    }
}
