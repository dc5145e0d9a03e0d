//! Creating and opening repositories: key files first, then the config.

use std::sync::Arc;

use bytes::Bytes;
use stash_repo_format::{
    compress::Mode,
    config::Config,
    crypto::Key,
    file_type::FileType,
    key::{KdfParams, KeyFile, KDF_TARGET},
    FormatError, Id,
};

use super::Repository;
use crate::{
    backend::Backend,
    error::{Error, Result},
};

/// restic tries at most this many key files per open.
const MAX_KEYS_TRIED: usize = 20;

/// Choices for a new repository.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Format version, 1 or 2.
    pub version: u32,
    /// Use FastCDC instead of restic's Rabin chunker for new data.
    pub fastcdc: bool,
    /// scrypt parameters for the first key; `None` calibrates them like restic
    /// ([`KdfParams::calibrated`]).
    pub kdf: Option<KdfParams>,
    /// Cut files as this repository does (its polynomial and chunker), so that
    /// copies between the two keep their blobs (restic's `--copy-chunker-params`).
    pub chunker_of: Option<Config>,
}

/// Host name for key and lock files (and the default snapshot host).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// User name for key and lock files.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            crate::backup::node_meta::user_name(crate::backup::node_meta::current_uid())
        })
}

/// Writes a new key file for `master` under `password`; returns its id. `None`
/// calibrates the scrypt parameters like restic does.
///
/// # Errors
/// Key derivation or backend errors.
pub async fn add_key(
    backend: &Arc<dyn Backend>,
    master: &Key,
    password: &[u8],
    params: Option<KdfParams>,
) -> Result<Id> {
    let master = master.clone();
    let password = password.to_vec();
    let kf = crate::cpu::spawn(move || {
        let params = params.unwrap_or_else(|| KdfParams::calibrated(KDF_TARGET));
        KeyFile::create(&master, &password, params, &username(), &hostname())
    })
    .await
    .map_err(|e| Error::damaged(FileType::Key, "new", e))?;
    let bytes = kf.to_bytes();
    let id = Id::hash(&bytes);
    backend
        .write(FileType::Key, &id, Bytes::from(bytes))
        .await?;
    Ok(id)
}

/// Creates a repository in an empty location.
///
/// # Errors
/// [`Error::AlreadyInitialized`] if a config exists; backend errors.
pub async fn init(
    backend: Arc<dyn Backend>,
    password: &[u8],
    opts: InitOptions,
) -> Result<Repository> {
    if backend.has_config().await? {
        return Err(Error::AlreadyInitialized(backend.location()));
    }
    let version = if opts.version == 0 { 2 } else { opts.version };
    let mut config = Config::new(version, opts.fastcdc).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(other) = &opts.chunker_of {
        config.chunker_polynomial = other.chunker_polynomial.clone();
        config.chunker = other.chunker.clone();
    }
    backend.create().await?;
    let key = Key::random();
    let key_id = add_key(&backend, &key, password, opts.kdf).await?;
    let sealed = key.seal(&config.to_json());
    if let Err(e) = backend
        .write(FileType::Config, &Id::default(), Bytes::from(sealed))
        .await
    {
        // Another process initialized the location at the same moment (the replicas of
        // a new StatefulSet all start together) and its config won: our key opens no
        // config, so it goes again.
        let _ = backend.remove(FileType::Key, &key_id).await;
        if backend.has_config().await.unwrap_or(false) {
            return Err(Error::AlreadyInitialized(backend.location()));
        }
        return Err(e);
    }
    Ok(Repository {
        backend,
        key,
        config,
        key_id,
        compression: Mode::default(),
        lock_retry: std::time::Duration::ZERO,
        pack_size: super::blob_saver::DEFAULT_PACK_SIZE,
        cache: None,
    })
}

/// Tries each key file with `password` and returns the first master key that opens
/// `sealed_config`, with its key id. A key that opens with the password but not the
/// config (left by an interrupted or lost concurrent `init`) is passed over.
async fn find_key(
    backend: &Arc<dyn Backend>,
    password: &[u8],
    sealed_config: &Bytes,
) -> Result<(Key, Id)> {
    let mut keys = backend.list(FileType::Key).await?;
    keys.sort_by_key(|(id, _)| *id);
    let mut damaged = None;
    for (id, _) in keys.into_iter().take(MAX_KEYS_TRIED) {
        let bytes = backend.read(FileType::Key, &id, None).await?;
        let kf = match KeyFile::from_bytes(&bytes) {
            Ok(k) => k,
            Err(e) => {
                damaged = Some(Error::damaged(FileType::Key, id, e));
                continue;
            }
        };
        let pw = password.to_vec();
        match crate::cpu::spawn(move || kf.open(&pw)).await {
            Ok(k) => match k.open(sealed_config) {
                Ok(_) => return Ok((k, id)),
                Err(e) => damaged = Some(Error::damaged(FileType::Config, "config", e)),
            },
            Err(FormatError::MacMismatch) => continue,
            Err(e) => damaged = Some(Error::damaged(FileType::Key, id, e)),
        }
    }
    Err(damaged.unwrap_or(Error::WrongPassword))
}

/// Opens an existing repository with `password`.
///
/// # Errors
/// [`Error::NoRepository`] without a config, [`Error::WrongPassword`] if no key
/// opens, [`Error::Damaged`] for an unreadable config.
pub async fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
    if !backend.has_config().await? {
        return Err(Error::NoRepository(backend.location()));
    }
    let sealed = backend.read(FileType::Config, &Id::default(), None).await?;
    let (key, key_id) = find_key(&backend, password, &sealed).await?;
    let plain = key
        .open(&sealed)
        .map_err(|e| Error::damaged(FileType::Config, "config", e))?;
    let config =
        Config::from_json(&plain).map_err(|e| Error::damaged(FileType::Config, "config", e))?;
    Ok(Repository {
        backend,
        key,
        config,
        key_id,
        compression: Mode::default(),
        lock_retry: std::time::Duration::ZERO,
        pack_size: super::blob_saver::DEFAULT_PACK_SIZE,
        cache: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::location::open_location;

    fn quick() -> InitOptions {
        InitOptions {
            version: 2,
            fastcdc: false,
            kdf: Some(stash_repo_format::key::KdfParams {
                n: 1024,
                r: 8,
                p: 1,
            }),
            chunker_of: None,
        }
    }

    /// Several processes initializing one new location at once (the replicas of a
    /// new StatefulSet): one wins, the others are told it is initialized, no stray key
    /// is left, and every one of them then opens the winner's repository.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inits_leave_one_repository() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("repo").to_string_lossy().into_owned();
        let attempts = (0..4).map(|_| {
            let location = location.clone();
            tokio::spawn(async move {
                let backend = open_location(&location, true).unwrap();
                init(backend, b"pw", quick()).await.map(|r| r.config.id)
            })
        });
        let results: Vec<Result<String>> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let won: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(!won.is_empty(), "{results:?}");
        assert!(
            won.iter().all(|id| *id == won[0]),
            "two configs won: {won:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::AlreadyInitialized(_)), "{e}");
            }
        }
        let backend = open_location(&location, false).unwrap();
        let keys = backend.list(FileType::Key).await.unwrap();
        assert_eq!(keys.len(), won.len(), "keys of the losers were left");
        let repo = open(backend, b"pw").await.unwrap();
        assert_eq!(&repo.config.id, won[0]);
    }
}
