//! `kubectl stash` (the `stash` binary installed as `kubectl-stash`): what a user does
//! with Stash objects from their own machine, with their own kubeconfig and rights,
//! never the operator's. Every call is the user's: a verb their RBAC forbids fails
//! with the API server's own words and changes nothing.
//!
//! - `trigger` creates an instant BackupSession of a BackupConfiguration;
//! - `copy` puts a Repository and its storage Secret into another namespace (the
//!   seed's way to restore across namespaces without the operator crossing them);
//! - `backup-pv` creates a claim bound to an existing PersistentVolume, after asking
//!   the API server whether the user may read that volume;
//! - `snapshots`, `check`, `unlock` and `restore` run the engine here, on the
//!   Repository's storage, with the Secret the user can read;
//! - `describe` prints a Stash object's phase, conditions, hosts and Events.

mod describe;
mod engine;
mod objects;

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use k8s_openapi::{
    api::{
        authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        },
        core::v1::{PersistentVolume, PersistentVolumeClaim, Secret},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{api::PostParams, Api, Client};

use crate::crd::{
    backup_configuration::BackupConfiguration,
    backup_session::{BackupSession, BackupSessionSpec, InvokerRef},
    repository::Repository,
};

/// `kubectl stash`: Stash objects with your own rights.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long = "namespace", global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a BackupSession of a BackupConfiguration now.
    Trigger { backup_configuration: String },
    /// Copy a Repository and its storage Secret into another namespace.
    Copy {
        repository: String,
        #[arg(long = "to-namespace")]
        to_namespace: String,
    },
    /// Create a PersistentVolumeClaim bound to an existing PersistentVolume, so the
    /// volume can be backed up.
    BackupPv {
        persistent_volume: String,
        /// The claim's name (default: the volume's).
        #[arg(long)]
        claim: Option<String>,
    },
    /// List a Repository's snapshots (restic's flags follow the name).
    Snapshots {
        repository: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Check a Repository (restic's flags follow, e.g. --read-data).
    Check {
        repository: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove a Repository's stale locks (--remove-all: every lock).
    Unlock {
        repository: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Restore a snapshot of a Repository onto this machine.
    Restore {
        repository: String,
        /// The snapshot (id, short id, or latest).
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Where to write the files.
        #[arg(long)]
        target: PathBuf,
        /// restic's restore flags (--include, --exclude, --host, --path).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show a Stash object's phase, conditions, hosts and Events.
    Describe {
        /// backupconfiguration, backupsession, restoresession or repository.
        kind: String,
        name: String,
    },
}

/// The API server's refusal, in its own words, with what was being done.
fn api_error(e: kube::Error, doing: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) => anyhow::anyhow!("{doing}: {} ({})", s.message, s.reason),
        other => anyhow::anyhow!("{doing}: {other}"),
    }
}

/// Runs one verb; the exit code.
///
/// # Errors
/// What the API server refused, a missing object, an engine failure.
pub async fn run(args: PluginArgs) -> anyhow::Result<i32> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or ~/.kube/config)")?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    match args.verb {
        Verb::Trigger {
            backup_configuration,
        } => trigger(&client, &ns, &backup_configuration).await,
        Verb::Copy {
            repository,
            to_namespace,
        } => copy(&client, &ns, &repository, &to_namespace).await,
        Verb::BackupPv {
            persistent_volume,
            claim,
        } => backup_pv(&client, &ns, &persistent_volume, claim).await,
        Verb::Snapshots { repository, args } => {
            engine::run(&client, &ns, &repository, "snapshots", &args).await
        }
        Verb::Check { repository, args } => {
            engine::run(&client, &ns, &repository, "check", &args).await
        }
        Verb::Unlock { repository, args } => {
            engine::run(&client, &ns, &repository, "unlock", &args).await
        }
        Verb::Restore {
            repository,
            snapshot,
            target,
            args,
        } => {
            let mut all = vec![
                snapshot,
                "--target".to_string(),
                target.to_string_lossy().into_owned(),
            ];
            all.extend(args);
            engine::run(&client, &ns, &repository, "restore", &all).await
        }
        Verb::Describe { kind, name } => describe::run(&client, &ns, &kind, &name).await,
    }
}

async fn trigger(client: &Client, ns: &str, configuration: &str) -> anyhow::Result<i32> {
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .get(configuration)
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!("reading BackupConfiguration {ns}/{configuration}"),
            )
        })?;
    let session = BackupSession {
        metadata: ObjectMeta {
            generate_name: Some(format!("{configuration}-")),
            namespace: Some(ns.to_string()),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: Some(InvokerRef {
                api_group: Some("stash.appscode.com".into()),
                kind: "BackupConfiguration".into(),
                name: configuration.to_string(),
            }),
            ..BackupSessionSpec::default()
        },
        status: None,
    };
    let made = Api::<BackupSession>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &session)
        .await
        .map_err(|e| api_error(e, &format!("creating a BackupSession in {ns}")))?;
    println!(
        "backupsession/{} created",
        made.metadata.name.unwrap_or_default()
    );
    Ok(0)
}

async fn copy(client: &Client, from: &str, name: &str, to: &str) -> anyhow::Result<i32> {
    if from == to {
        bail!("Repository {name} is in namespace {to} already");
    }
    let repo = Api::<Repository>::namespaced(client.clone(), from)
        .get(name)
        .await
        .map_err(|e| api_error(e, &format!("reading Repository {from}/{name}")))?;
    let secret_name = repo
        .spec
        .backend
        .storage_secret_name
        .clone()
        .filter(|s| !s.is_empty());
    let secrets = Api::<Secret>::namespaced(client.clone(), to);
    let mut created_secret = None;
    if let Some(s) = &secret_name {
        let secret = Api::<Secret>::namespaced(client.clone(), from)
            .get(s)
            .await
            .map_err(|e| api_error(e, &format!("reading Secret {from}/{s}")))?;
        secrets
            .create(&PostParams::default(), &objects::copied_secret(&secret, to))
            .await
            .map_err(|e| api_error(e, &format!("creating Secret {to}/{s}")))?;
        created_secret = Some(s.clone());
    }
    let result = Api::<Repository>::namespaced(client.clone(), to)
        .create(
            &PostParams::default(),
            &objects::copied_repository(&repo, to),
        )
        .await;
    if let Err(e) = result {
        // Leave nothing half-copied.
        if let Some(s) = created_secret {
            let _ = secrets.delete(&s, &Default::default()).await;
        }
        return Err(api_error(e, &format!("creating Repository {to}/{name}")));
    }
    match secret_name {
        Some(s) => println!("repository/{name} and secret/{s} copied to namespace {to}"),
        None => println!("repository/{name} copied to namespace {to}"),
    }
    Ok(0)
}

async fn backup_pv(
    client: &Client,
    ns: &str,
    pv: &str,
    claim_name: Option<String>,
) -> anyhow::Result<i32> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("get".into()),
                resource: Some("persistentvolumes".into()),
                name: Some(pv.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| api_error(e, "asking the API server for your rights"))?;
    if !answer.status.as_ref().is_some_and(|s| s.allowed) {
        bail!("you may not read PersistentVolume {pv}: no claim created");
    }
    let volume = Api::<PersistentVolume>::all(client.clone())
        .get(pv)
        .await
        .map_err(|e| api_error(e, &format!("reading PersistentVolume {pv}")))?;
    let name = claim_name.unwrap_or_else(|| pv.to_string());
    let claim = objects::for_volume(&volume, &name, ns).map_err(anyhow::Error::msg)?;
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &claim)
        .await
        .map_err(|e| api_error(e, &format!("creating PersistentVolumeClaim {ns}/{name}")))?;
    println!("persistentvolumeclaim/{name} created for persistentvolume/{pv}");
    Ok(0)
}
