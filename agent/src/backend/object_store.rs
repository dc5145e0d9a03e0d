//! [`Backend`] over any `object_store` store (local disk, memory, S3, GCS, Azure),
//! under a key prefix, in restic's default layout.

use std::{
    collections::HashSet,
    ops::Range,
    sync::{atomic::Ordering, Arc, PoisonError},
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    path::Path, GetOptions, GetRange, GetResult, GetResultPayload, ObjectStore, PutMode,
    PutOptions, PutPayload,
};
use stash_repo_format::{file_type::FileType, Id};

use super::{Backend, ReadBuf};
use crate::error::{Error, Result};

/// A repository stored in an object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    display: String,
    /// For a local directory: its path, so `create` can make restic's `data/xx` dirs.
    local_root: Option<std::path::PathBuf>,
    /// See [`Backend::lists_finished_writes`].
    lists_finished_writes: bool,
    /// Set once the local file system refused `O_DIRECT`: packs are then written
    /// through object_store like everything else.
    no_direct_writes: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the local file system refused an `O_DIRECT` read: packs are then
    /// read through the page cache.
    no_direct_reads: Arc<std::sync::atomic::AtomicBool>,
    /// Local packs given to [`Backend::will_read`] and not read to their end since:
    /// the kernel is reading them into the page cache, so their ranges are read
    /// from there. `check` hints about 128 MiB of packs.
    warming: Arc<std::sync::Mutex<HashSet<Id>>>,
}

/// The messages of an error and its sources, joined.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        out.push_str(&err.to_string());
        out.push('\n');
        cur = err.source();
    }
    out
}

/// The HTTP status in an error's message chain (`object_store` keeps its HTTP
/// error type private; its message reads "...status code: 400 Bad Request...").
fn http_status(chain: &str) -> Option<u16> {
    let i = chain.find("status code: ")?;
    chain[i + 13..]
        .chars()
        .take(3)
        .collect::<String>()
        .parse()
        .ok()
}

/// Whether retrying might help: not for errors about the request itself (bad
/// path, missing permission, a precondition, an unsupported feature, an HTTP
/// 4xx other than 408 and 429, a TLS certificate the client does not trust); yes
/// for everything else (5xx, timeouts, broken connections, I/O errors).
pub fn is_transient(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::AlreadyExists { .. }
        | object_store::Error::Precondition { .. }
        | object_store::Error::NotModified { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => false,
        e => {
            let chain = chain_text(e);
            let client_error = matches!(
                http_status(&chain),
                Some(s) if (400..500).contains(&s) && s != 408 && s != 429
            );
            !client_error && !chain.to_ascii_lowercase().contains("certificate")
        }
    }
}

/// Where cloud clients look for instance credentials when none are configured.
const METADATA_HOSTS: [&str; 2] = ["169.254.169.254", "metadata.google.internal"];

fn map_err(op: &'static str, path: &Path, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
        e if METADATA_HOSTS.iter().any(|h| chain_text(&e).contains(h)) => Error::Backend {
            op,
            path: path.to_string(),
            transient: is_transient(&e),
            source: format!(
                "{e} (no credentials were configured, so the instance metadata service \
                 was asked; set them in the environment or --secret-dir)"
            )
            .into(),
        },
        e => Error::Backend {
            op,
            path: path.to_string(),
            transient: is_transient(&e),
            source: Box::new(e),
        },
    }
}

impl ObjectStoreBackend {
    /// A backend over `store`, with every key below `prefix` (no leading or trailing
    /// slash; empty for the store's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, display: String) -> Self {
        ObjectStoreBackend {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            display,
            local_root: None,
            lists_finished_writes: false,
            no_direct_writes: Arc::default(),
            no_direct_reads: Arc::default(),
            warming: Arc::default(),
        }
    }

    /// Marks the backend as a local directory at `root` (whose listings show every
    /// finished write).
    pub fn with_local_root(mut self, root: std::path::PathBuf) -> Self {
        self.local_root = Some(root);
        self.lists_finished_writes = true;
        self
    }

    /// Declares that the store's listings show every finished write (the memory
    /// store; see [`Backend::lists_finished_writes`]).
    pub fn with_consistent_listing(mut self) -> Self {
        self.lists_finished_writes = true;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix (no leading or trailing slash; empty for the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// On a local directory, flushes a just-written file and its directory to disk:
    /// object_store's local store renames a temporary file into place without fsync,
    /// and a write must be durable before it is reported done (restic syncs too).
    async fn sync_local(&self, ty: FileType, id: &Id) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let file = root.join(ty.path(id));
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&file, e))?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io(dir, e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Usage(format!("sync task: {e}")))?
    }

    /// On a local directory, writes a pack past the page cache (see
    /// [`super::direct_write`]); `false` where that is not possible here.
    async fn write_pack_direct(&self, id: &Id, data: &Bytes) -> Result<bool> {
        let Some(root) = &self.local_root else {
            return Ok(false);
        };
        if self.no_direct_writes.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let file = root.join(FileType::Pack.path(id));
        let data = data.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            super::direct_write::write(&file, &data).map_err(|e| Error::Backend {
                op: "write",
                path: file.display().to_string(),
                source: Box::new(e),
                transient: true,
            })
        })
        .await
        .map_err(|e| Error::Usage(format!("write task: {e}")))??;
        if outcome == super::direct_write::Outcome::Unsupported {
            self.no_direct_writes.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn path(&self, ty: FileType, id: &Id) -> Path {
        self.key(&ty.path(id))
    }

    async fn get(&self, path: &Path, range: Option<Range<u64>>) -> Result<GetResult> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        self.store
            .get_opts(path, opts)
            .await
            .map_err(|e| map_err("read", path, e))
    }

    /// Ok if the existing config holds exactly `data`.
    async fn same_config(&self, path: &Path, data: &Bytes) -> Result<()> {
        let existing = self.read(FileType::Config, &Id::default(), None).await?;
        if existing == *data {
            return Ok(());
        }
        Err(Error::Backend {
            op: "write",
            path: path.to_string(),
            source: "a different config file already exists".into(),
            transient: false,
        })
    }
}

/// A ranged read must stay inside the file and return exactly the range.
fn check_read(path: &Path, range: Option<Range<u64>>, size: u64, got: usize) -> Result<()> {
    let Some(r) = range else { return Ok(()) };
    if r.end > size {
        return Err(Error::Backend {
            op: "read",
            path: path.to_string(),
            source: format!("range {r:?} goes past the end of the {size}-byte file").into(),
            transient: false,
        });
    }
    if got as u64 != r.end - r.start {
        return Err(Error::Backend {
            op: "read",
            path: path.to_string(),
            source: format!("short read: {got} of {} bytes", r.end - r.start).into(),
            transient: true,
        });
    }
    Ok(())
}

#[async_trait]
impl Backend for ObjectStoreBackend {
    fn lists_finished_writes(&self) -> bool {
        self.lists_finished_writes
    }

    fn location(&self) -> String {
        self.display.clone()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        let dir = self.key(ty.dir());
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&dir));
        while let Some(meta) = stream
            .try_next()
            .await
            .map_err(|e| map_err("list", &dir, e))?
        {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if let Ok(id) = Id::from_hex(name) {
                out.push((id, meta.size));
            }
        }
        Ok(out)
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        let path = self.path(ty, id);
        let res = self.get(&path, range.clone()).await?;
        let size = res.meta.size;
        let bytes = res.bytes().await.map_err(|e| map_err("read", &path, e))?;
        check_read(&path, range, size, bytes.len())?;
        Ok(bytes)
    }

    /// Local files are read straight into `buf` (large ranges of packs past the page
    /// cache, [`super::direct_read`]); remote bodies are appended to it.
    async fn read_into(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
        mut buf: Vec<u8>,
    ) -> Result<ReadBuf> {
        let path = self.path(ty, id);
        let res = self.get(&path, range.clone()).await?;
        let (size, got) = (res.meta.size, res.range.clone());
        match res.payload {
            GetResultPayload::File(file, local) => {
                let no_direct = self.no_direct_reads.clone();
                // Hinted packs are read in windows, all through the cache; the one
                // reaching the end of the file ends the hint.
                let warmed = ty == FileType::Pack && {
                    let mut warming = self.warming.lock().unwrap_or_else(PoisonError::into_inner);
                    if got.end >= size {
                        warming.remove(id)
                    } else {
                        warming.contains(id)
                    }
                };
                let direct = ty == FileType::Pack
                    && got.end - got.start >= super::direct_read::MIN_DIRECT
                    && !warmed
                    && !no_direct.load(Ordering::Relaxed);
                let at = local.clone();
                let read = tokio::task::spawn_blocking(move || -> std::io::Result<ReadBuf> {
                    use std::io::{Read, Seek, SeekFrom};
                    if direct {
                        match super::direct_read::read_range(&at, got.clone(), &mut buf)? {
                            super::direct_read::Outcome::Read { start } => {
                                return Ok(ReadBuf::new(buf, start))
                            }
                            super::direct_read::Outcome::Unsupported => {
                                no_direct.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    let mut file = file;
                    file.seek(SeekFrom::Start(got.start))?;
                    let len = got.end - got.start;
                    let want = usize::try_from(len).unwrap_or(0);
                    if buf.capacity() < want {
                        // A new allocation: growing would first copy the old bytes over.
                        buf = Vec::with_capacity(want);
                    }
                    buf.clear();
                    file.take(len).read_to_end(&mut buf)?;
                    Ok(buf.into())
                })
                .await
                .map_err(|e| Error::Usage(format!("read task: {e}")))?
                .map_err(|e| Error::io(&local, e))?;
                check_read(&path, range, size, read.len())?;
                Ok(read)
            }
            GetResultPayload::Stream(mut body) => {
                buf.clear();
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| map_err("read", &path, e))?
                {
                    buf.extend_from_slice(&chunk);
                }
                check_read(&path, range, size, buf.len())?;
                Ok(buf.into())
            }
        }
    }

    fn takes_read_hints(&self) -> bool {
        self.local_root.is_some()
    }

    async fn will_read(&self, ty: FileType, id: &Id) {
        let Some(root) = &self.local_root else {
            return;
        };
        if ty != FileType::Pack {
            return;
        }
        let file = root.join(ty.path(id));
        let advised = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file).and_then(|f| crate::sys::will_need(&f))
        })
        .await;
        // Only a hint: a file that cannot be opened now fails when it is read.
        if matches!(advised, Ok(Ok(()))) {
            self.warming
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(*id);
        }
    }

    /// Create-only put. Where the store cannot do create-only (S3 with
    /// `AWS_CONDITIONAL_PUT=disabled`), content-addressed files are overwritten
    /// (same name, same bytes) and the config is written only after checking it is
    /// absent. An existing file counts as written: for content-addressed files it
    /// holds these bytes; the config must hold exactly these bytes (a retried write
    /// whose first answer was lost), anything else is an error.
    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        if ty == FileType::Pack && self.write_pack_direct(id, &data).await? {
            return Ok(());
        }
        let path = self.path(ty, id);
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let res = self
            .store
            .put_opts(&path, PutPayload::from(data.clone()), create)
            .await;
        let res = match res {
            Err(object_store::Error::NotImplemented) => {
                if ty == FileType::Config && self.has_config().await? {
                    return self.same_config(&path, &data).await;
                }
                self.store
                    .put_opts(&path, PutPayload::from(data.clone()), PutOptions::default())
                    .await
            }
            r => r,
        };
        match res {
            Ok(_) => self.sync_local(ty, id).await,
            Err(object_store::Error::AlreadyExists { .. }) if ty != FileType::Config => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => self.same_config(&path, &data).await,
            // A put answered "not found": the bucket or container is missing.
            Err(e @ object_store::Error::NotFound { .. }) => Err(Error::Backend {
                op: "write",
                path: path.to_string(),
                source: format!("{e} (does the bucket or container exist?)").into(),
                transient: false,
            }),
            Err(e) => Err(map_err("write", &path, e)),
        }
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        let path = self.path(ty, id);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("remove", &path, e)),
        }
    }

    async fn has_config(&self) -> Result<bool> {
        let path = self.key("config");
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(map_err("stat", &path, e)),
        }
    }

    async fn create(&self) -> Result<()> {
        if let Some(root) = &self.local_root {
            let root = root.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                for d in ["keys", "snapshots", "index", "locks"] {
                    std::fs::create_dir_all(root.join(d))
                        .map_err(|e| Error::io(root.join(d), e))?;
                }
                for i in 0..=255u8 {
                    let d = root.join("data").join(format!("{i:02x}"));
                    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Usage(format!("create task failed: {e}")))??;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        }
    }

    #[test]
    fn transient_classification() {
        let msg = |s: &str| {
            format!("Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: {s}: <Error/>")
        };
        assert_eq!(http_status(&msg("403 Forbidden")), Some(403));
        assert_eq!(http_status("connection reset"), None);
        assert!(!is_transient(&generic(&msg("400 Bad Request"))));
        assert!(!is_transient(&generic(&msg("416 Range Not Satisfiable"))));
        assert!(is_transient(&generic(&msg("429 Too Many Requests"))));
        assert!(is_transient(&generic(&msg("408 Request Timeout"))));
        assert!(is_transient(&generic(&msg("503 Service Unavailable"))));
        assert!(is_transient(&generic(
            "error sending request: connection reset by peer"
        )));
        assert!(!is_transient(&generic(
            "error sending request: invalid peer certificate: UnknownIssuer"
        )));
        assert!(!is_transient(&object_store::Error::NotImplemented));
        assert!(!is_transient(&object_store::Error::PermissionDenied {
            path: "p".into(),
            source: "no".into()
        }));
    }

    #[test]
    fn missing_credentials_get_a_hint() {
        let e = map_err(
            "stat",
            &Path::from("config"),
            generic("Error performing PUT http://169.254.169.254/latest/api/token - 403"),
        );
        assert!(
            e.to_string().contains("no credentials were configured"),
            "{e}"
        );
    }
}
