//! `stash copy --from-repo SRC [ID...]`: snapshots of another repository into this one.

use std::path::PathBuf;

use super::{filter::FilterArgs, password, Global};
use crate::{
    backend::{open_location_with, OpenOptions},
    copy::{copy_snapshots, Copied},
    error::Error,
    repository,
};

/// Arguments of `copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to copy (default: all that pass the filters).
    snapshots: Vec<String>,
    #[command(flatten)]
    from: FromRepo,
    #[command(flatten)]
    filter: FilterArgs,
}

/// The other repository of `copy` and `init --copy-chunker-params`.
#[derive(Debug, clap::Args)]
pub struct FromRepo {
    /// The other repository (the source of a copy).
    #[arg(
        long = "from-repo",
        env = "RESTIC_FROM_REPOSITORY",
        value_name = "REPOSITORY"
    )]
    from_repo: Option<String>,
    /// File holding the other repository's password.
    #[arg(
        long = "from-password-file",
        env = "RESTIC_FROM_PASSWORD_FILE",
        value_name = "FILE"
    )]
    from_password_file: Option<PathBuf>,
    /// Command whose output is the other repository's password.
    #[arg(
        long = "from-password-command",
        env = "RESTIC_FROM_PASSWORD_COMMAND",
        value_name = "COMMAND"
    )]
    from_password_command: Option<String>,
}

impl FromRepo {
    /// Opens the other repository.
    ///
    /// # Errors
    /// No `--from-repo`, no repository there, or a wrong password.
    pub async fn open(&self) -> anyhow::Result<repository::Repository> {
        let location = self.from_repo.as_deref().ok_or_else(|| {
            anyhow::anyhow!("give the other repository with --from-repo or RESTIC_FROM_REPOSITORY")
        })?;
        let backend = open_location_with(location, false, &OpenOptions::default())?;
        if !backend.has_config().await? {
            return Err(Error::NoRepository(backend.location()).into());
        }
        let pw = password::from(
            &password::Sources {
                file: self.from_password_file.as_deref(),
                command: self.from_password_command.as_deref(),
                env: "RESTIC_FROM_PASSWORD",
                secret_dir: None,
                what: "source repository",
            },
            false,
        )?;
        Ok(repository::open(backend, pw.as_bytes()).await?)
    }
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let dst = g.open().await?;
    let src = a.from.open().await?;
    let snaps = super::filter::select(&src, &a.snapshots, &a.filter).await?;
    let quiet = g.quiet;
    let stats = copy_snapshots(&src, &dst, snaps, |id, c| {
        if quiet {
            return;
        }
        match c {
            Copied::To(new) => println!("snapshot {} saved as {}", id.short(), new.short()),
            Copied::Already(d) => println!(
                "skipping snapshot {}, was already copied to snapshot {}",
                id.short(),
                d.short()
            ),
        }
    })
    .await?;
    if !quiet {
        println!(
            "copied {} blobs, {}",
            stats.blobs,
            super::backup::human(stats.bytes)
        );
    }
    Ok(0)
}
