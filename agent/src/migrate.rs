//! `migrate upgrade_repo_v2`: a version 1 repository becomes version 2 (compressed
//! blobs allowed) by rewriting its config with the same id and polynomial, as
//! restic's migration does. The repository is checked first; the old config is kept
//! in a temporary file until the new one is written, and put back if the write
//! fails, so an interrupted upgrade leaves a repository restic opens.

use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use crate::{
    check::{check, ReadData},
    error::{Error, Result},
    repository::Repository,
};

/// The migrations there are, with restic's names and descriptions.
pub const MIGRATIONS: &[(&str, &str)] = &[("upgrade_repo_v2", "upgrade a repository to version 2")];

/// Whether `name` can be applied to `repo`, or why not.
pub fn applicable(repo: &Repository, name: &str) -> std::result::Result<(), String> {
    match name {
        "upgrade_repo_v2" if repo.config().version == 1 => Ok(()),
        "upgrade_repo_v2" => Err(format!(
            "repository is already upgraded to version {}",
            repo.config().version
        )),
        other => Err(format!("unknown migration {other:?}")),
    }
}

/// Upgrades `repo` to version 2 (see the module docs). Takes an exclusive lock.
///
/// # Errors
/// [`Error::Usage`] when it is not version 1, [`Error::Check`] when the check finds
/// damage, lock conflicts and backend errors.
pub async fn upgrade_repo_v2(repo: &Repository) -> Result<()> {
    applicable(repo, "upgrade_repo_v2").map_err(Error::Usage)?;
    let lock = repo.lock(true).await?;
    let res = upgrade(repo).await;
    let released = lock.release().await;
    res?;
    released
}

async fn upgrade(repo: &Repository) -> Result<()> {
    let report = check(repo, ReadData::None, None).await?;
    if let Some(first) = report.errors.first() {
        return Err(Error::Check(format!(
            "the repository has {} error(s), the first: {first}; repair it before upgrading",
            report.errors.len()
        )));
    }
    let backend = repo.backend();
    let old = backend.read(FileType::Config, &Id::default(), None).await?;
    let saved = std::env::temp_dir().join(format!(
        "stash-upgrade-repo-v2-{}-{}.config",
        repo.config().id,
        std::process::id()
    ));
    std::fs::write(&saved, &old).map_err(|e| Error::io(&saved, e))?;
    let mut config = repo.config().clone();
    config.version = 2;
    let sealed = Bytes::from(repo.key().seal(&config.to_json()));
    backend.remove(FileType::Config, &Id::default()).await?;
    if let Err(e) = backend
        .write(FileType::Config, &Id::default(), sealed)
        .await
    {
        let restored = backend.write(FileType::Config, &Id::default(), old).await;
        return Err(match restored {
            Ok(()) => {
                let _ = std::fs::remove_file(&saved);
                e
            }
            Err(again) => Error::Usage(format!(
                "writing the new config failed ({e}) and so did putting the old one back \
                 ({again}); it is saved in {}",
                saved.display()
            )),
        });
    }
    let _ = std::fs::remove_file(&saved);
    Ok(())
}
