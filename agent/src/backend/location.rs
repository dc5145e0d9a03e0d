//! Repository locations in restic's syntax, and turning them into backends.
//!
//! [`parse_location`] is pure; [`open_location_with`] adds credentials (environment
//! and an optional secret directory, see [`super::cloud`]) and the standard
//! decorators ([`super::wrap`]).
//!
//! | location | meaning |
//! | --- | --- |
//! | `PATH`, `local:PATH` | a local directory |
//! | `memory:NAME` | a process-wide in-memory store (tests) |
//! | `s3:HOST[:PORT]/BUCKET[/PREFIX]` | S3 over https; `HOST` may be `s3.amazonaws.com` |
//! | `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` | S3, path-style URL |
//! | `s3:http://HOST[:PORT]/BUCKET[/PREFIX]` | S3 over plain http (an explicit choice, as in restic) |
//! | `gs:BUCKET:/PREFIX` | Google Cloud Storage |
//! | `azure:CONTAINER:/PREFIX` | Azure Blob Storage |

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

use object_store::{local::LocalFileSystem, memory::InMemory, ObjectStore};

use super::{cloud, secret_dir, Backend, ObjectStoreBackend, Wrapping};
use crate::error::{Error, Result};

/// An S3 location as restic reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Host, with a port if one was given (restic's "endpoint").
    pub endpoint: String,
    /// Plain http (`s3:http://...`).
    pub use_http: bool,
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket, cleaned, without leading or trailing slash.
    pub prefix: String,
}

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory, as given.
    Local(String),
    /// An in-memory store of this name.
    Memory(String),
    /// Amazon S3 or an S3-compatible server.
    S3(S3Location),
    /// Google Cloud Storage.
    Gcs {
        /// The bucket.
        bucket: String,
        /// Key prefix, cleaned, without leading or trailing slash.
        prefix: String,
    },
    /// Azure Blob Storage.
    Azure {
        /// The container.
        container: String,
        /// Key prefix, cleaned, without leading or trailing slash.
        prefix: String,
    },
}

/// Schemes restic knows that this build does not implement.
const UNSUPPORTED: [&str; 5] = ["b2:", "sftp:", "rest:", "rclone:", "swift:"];

fn usage(location: &str, msg: &str) -> Error {
    Error::Usage(format!("repository location {location:?}: {msg}"))
}

/// Go's `path.Clean` for a relative key prefix, with the leading and trailing
/// slashes and any `.` removed; `..` may not climb above the root.
fn clean_prefix(location: &str, prefix: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in prefix.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(usage(
                        location,
                        "the path climbs above the bucket with `..`",
                    ));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

/// `NAME:/PREFIX` for gs: and azure: (restic: the part before the first colon is
/// the bucket or container, the rest the prefix).
fn parse_colon(location: &str, rest: &str, what: &str) -> Result<(String, String)> {
    let Some((name, prefix)) = rest.split_once(':') else {
        return Err(usage(
            location,
            &format!("expected {what}:/PREFIX (the {what} name and path are separated by a colon)"),
        ));
    };
    if name.is_empty() {
        return Err(usage(location, &format!("the {what} name is empty")));
    }
    if name.contains('/') {
        return Err(usage(
            location,
            &format!("the {what} name {name:?} contains a slash"),
        ));
    }
    Ok((name.to_string(), clean_prefix(location, prefix)?))
}

fn parse_s3(location: &str, rest: &str) -> Result<S3Location> {
    let (use_http, host, path) = if rest.starts_with("http") {
        // restic: `s3:http...` is a URL; its host is the endpoint, its path
        // bucket/prefix.
        let (use_http, after) = if let Some(a) = rest.strip_prefix("http://") {
            (true, a)
        } else if let Some(a) = rest.strip_prefix("https://") {
            (false, a)
        } else {
            return Err(usage(
                location,
                "expected s3:http://HOST/BUCKET or s3:https://HOST/BUCKET",
            ));
        };
        if after.contains(['?', '#']) {
            return Err(usage(
                location,
                "a query or fragment is not allowed in an S3 URL",
            ));
        }
        let (host, path) = after.split_once('/').unwrap_or((after, ""));
        if path.is_empty() {
            return Err(usage(location, "bucket name not found"));
        }
        (use_http, host, path)
    } else {
        // restic: the first path component is the host, then bucket and prefix.
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        (false, host, path)
    };
    if host.is_empty() {
        return Err(usage(
            location,
            "host not found (expected s3:HOST/BUCKET[/PREFIX])",
        ));
    }
    if host.contains('@') {
        return Err(usage(location, "credentials in the URL are not supported; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
    }
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(usage(location, "bucket name not found"));
    }
    Ok(S3Location {
        endpoint: host.to_string(),
        use_http,
        bucket: bucket.to_string(),
        prefix: clean_prefix(location, prefix)?,
    })
}

/// Parses a repository location in restic's syntax (see the module docs).
///
/// # Errors
/// [`Error::Usage`] for a malformed location or a scheme this build lacks.
pub fn parse_location(location: &str) -> Result<Location> {
    if let Some(name) = location.strip_prefix("memory:") {
        return Ok(Location::Memory(name.to_string()));
    }
    if let Some(rest) = location.strip_prefix("s3:") {
        return parse_s3(location, rest).map(Location::S3);
    }
    if let Some(rest) = location.strip_prefix("gs:") {
        let (bucket, prefix) = parse_colon(location, rest, "bucket")?;
        return Ok(Location::Gcs { bucket, prefix });
    }
    if let Some(rest) = location.strip_prefix("azure:") {
        let (container, prefix) = parse_colon(location, rest, "container")?;
        return Ok(Location::Azure { container, prefix });
    }
    for scheme in UNSUPPORTED {
        if location.starts_with(scheme) {
            return Err(usage(
                location,
                &format!(
                    "the {} backend is not supported by this build",
                    scheme.trim_end_matches(':')
                ),
            ));
        }
    }
    let path = location.strip_prefix("local:").unwrap_or(location);
    if path.is_empty() {
        return Err(Error::Usage("empty repository location".into()));
    }
    Ok(Location::Local(path.to_string()))
}

/// How [`open_location_with`] finds credentials and wraps the store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// A directory holding a Stash storage Secret mounted as files
    /// (see [`secret_dir`]). Environment variables take precedence over its files.
    pub secret_dir: Option<PathBuf>,
    /// Decorators; `None` for [`Wrapping::for_location`]'s defaults.
    pub wrapping: Option<Wrapping>,
    /// Settings used when neither the environment nor the secret directory has them
    /// (the operator's region from a Repository's spec, say).
    pub defaults: std::collections::BTreeMap<String, String>,
    /// Settings that win over the environment and the secret directory (command
    /// line flags: `-o s3.region=...`, `--cacert`).
    pub overrides: std::collections::BTreeMap<String, String>,
    /// Requests in flight at most, instead of the location's default (`-o
    /// s3.connections=N`).
    pub connections: Option<usize>,
    /// Upload and download limits in bytes per second.
    pub limit_upload: Option<u64>,
    pub limit_download: Option<u64>,
}

pub(crate) fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut m = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// Opens the backend for `location` with credentials from the environment only.
/// With `create`, a missing local directory is created (for `init`); otherwise it is
/// reported as "no repository".
///
/// # Errors
/// As [`open_location_with`].
pub fn open_location(location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    open_location_with(location, create, &OpenOptions::default())
}

/// Opens the backend for `location`: parses it, builds the store with credentials
/// from the environment and `opts.secret_dir`, and wraps it in the standard
/// decorators (timeout, then retry, then a concurrency limit; none for `memory:`).
///
/// # Errors
/// [`Error::NoRepository`] for a missing local directory, [`Error::Usage`] for a bad
/// location, unreadable secret directory or incomplete cloud configuration, or an
/// I/O error.
pub fn open_location_with(
    location: &str,
    create: bool,
    opts: &OpenOptions,
) -> Result<Arc<dyn Backend>> {
    let parsed = parse_location(location)?;
    let inner: Arc<dyn Backend> = match &parsed {
        Location::Memory(name) => {
            return Ok(Arc::new(
                ObjectStoreBackend::new(memory_store(name), "", location.to_string())
                    .with_consistent_listing(),
            ));
        }
        Location::Local(path) => Arc::new(open_local(path, create)?),
        cloud_loc => {
            let vars = cloud_vars(cloud_loc, opts)?;
            let (store, prefix) = cloud::open_store(cloud_loc, &vars)?;
            Arc::new(ObjectStoreBackend::new(
                store,
                &prefix,
                cloud::display(location),
            ))
        }
    };
    let mut wrapping = opts
        .wrapping
        .clone()
        .unwrap_or_else(|| Wrapping::for_location(&parsed));
    if opts.connections.is_some() {
        wrapping.connections = opts.connections;
    }
    let wrapped = wrapping.wrap(inner);
    if opts.limit_upload.is_none() && opts.limit_download.is_none() {
        return Ok(wrapped);
    }
    Ok(Arc::new(super::RateLimitBackend::new(
        wrapped,
        opts.limit_upload,
        opts.limit_download,
    )))
}

/// The variables a cloud store of `loc` is built from: the environment, then the
/// secret directory's files, `opts.defaults` where both are silent, an AWS profile
/// for S3, and `opts.overrides` over everything.
///
/// # Errors
/// An unreadable secret directory or AWS profile.
pub fn cloud_vars(loc: &Location, opts: &OpenOptions) -> Result<cloud::Vars> {
    let secrets = match &opts.secret_dir {
        Some(dir) => Some(secret_dir::read(dir)?),
        None => None,
    };
    let mut vars = cloud::Vars::from_env(secrets.as_ref());
    for (k, v) in &opts.defaults {
        if vars.get(k).is_none() {
            vars.values.insert(k.clone(), v.clone());
        }
    }
    if matches!(loc, Location::S3(_)) {
        super::aws_profile::apply(&mut vars)?;
    }
    vars.values.extend(opts.overrides.clone());
    Ok(vars)
}

fn open_local(path: &str, create: bool) -> Result<ObjectStoreBackend> {
    let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    if !path.is_dir() {
        if create {
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        } else {
            return Err(Error::NoRepository(path.display().to_string()));
        }
    }
    let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| Error::Backend {
        op: "open",
        path: path.display().to_string(),
        source: Box::new(e),
        transient: false,
    })?;
    Ok(ObjectStoreBackend::new(Arc::new(fs), "", path.display().to_string()).with_local_root(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str, use_http: bool, bucket: &str, prefix: &str) -> Location {
        Location::S3(S3Location {
            endpoint: endpoint.into(),
            use_http,
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    }

    fn ok(s: &str) -> Location {
        parse_location(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match parse_location(s) {
            Ok(l) => panic!("{s} parsed as {l:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn s3_without_scheme_first_component_is_host() {
        assert_eq!(
            ok("s3:s3.amazonaws.com/bucket/prefix"),
            s3("s3.amazonaws.com", false, "bucket", "prefix")
        );
        assert_eq!(
            ok("s3:s3.amazonaws.com/bucket"),
            s3("s3.amazonaws.com", false, "bucket", "")
        );
        assert_eq!(
            ok("s3:s3.amazonaws.com/bucket/"),
            s3("s3.amazonaws.com", false, "bucket", "")
        );
        assert_eq!(
            ok("s3:s3.eu-west-1.amazonaws.com/b/deep/er/prefix"),
            s3("s3.eu-west-1.amazonaws.com", false, "b", "deep/er/prefix")
        );
        assert_eq!(
            ok("s3:minio.local:9000/b/p"),
            s3("minio.local:9000", false, "b", "p")
        );
        // A host without a bucket.
        assert!(err("s3:s3.amazonaws.com").contains("bucket name not found"));
        assert!(err("s3:s3.amazonaws.com/").contains("bucket name not found"));
        assert!(err("s3:/bucket").contains("host not found"));
        assert!(err("s3:").contains("host not found"));
    }

    #[test]
    fn s3_with_scheme_is_a_path_style_url() {
        assert_eq!(
            ok("s3:https://host/bucket/prefix"),
            s3("host", false, "bucket", "prefix")
        );
        assert_eq!(
            ok("s3:http://127.0.0.1:9000/bucket/a/b"),
            s3("127.0.0.1:9000", true, "bucket", "a/b")
        );
        assert_eq!(
            ok("s3:https://host:8443/bucket"),
            s3("host:8443", false, "bucket", "")
        );
        assert_eq!(
            ok("s3:http://[::1]:9000/bucket/p"),
            s3("[::1]:9000", true, "bucket", "p")
        );
        assert!(err("s3:https://host").contains("bucket name not found"));
        assert!(err("s3:https://host/").contains("bucket name not found"));
        assert!(err("s3:http:///bucket").contains("host not found"));
        assert!(err("s3:httpx://host/bucket").contains("expected s3:http://"));
        assert!(err("s3:https://host/bucket?x=1").contains("query"));
        assert!(err("s3:https://user:pw@host/bucket").contains("credentials"));
    }

    #[test]
    fn prefixes_are_cleaned_like_go_path_clean() {
        assert_eq!(
            ok("s3:host/bucket//a///b/"),
            s3("host", false, "bucket", "a/b")
        );
        assert_eq!(
            ok("s3:host/bucket/./a/./b"),
            s3("host", false, "bucket", "a/b")
        );
        assert_eq!(
            ok("s3:host/bucket/a/../b"),
            s3("host", false, "bucket", "b")
        );
        assert_eq!(ok("s3:host/bucket/a/.."), s3("host", false, "bucket", ""));
        assert!(err("s3:host/bucket/..").contains("climbs"));
        assert!(err("s3:host/bucket/a/../../b").contains("climbs"));
    }

    #[test]
    fn gs_and_azure_use_name_colon_path() {
        assert_eq!(
            ok("gs:bucket:/prefix"),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "prefix".into()
            }
        );
        assert_eq!(
            ok("gs:bucket:/"),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ok("gs:bucket:"),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ok("gs:bucket:a/b/"),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            ok("gs:bucket:/a:b"),
            Location::Gcs {
                bucket: "bucket".into(),
                prefix: "a:b".into()
            }
        );
        assert!(err("gs:bucket").contains("separated by a colon"));
        assert!(err("gs::/p").contains("name is empty"));
        assert!(err("gs:a/b:/p").contains("contains a slash"));
        assert_eq!(
            ok("azure:container:/prefix/x"),
            Location::Azure {
                container: "container".into(),
                prefix: "prefix/x".into()
            }
        );
        assert_eq!(
            ok("azure:c:/"),
            Location::Azure {
                container: "c".into(),
                prefix: "".into()
            }
        );
        assert!(err("azure:container").contains("separated by a colon"));
        assert!(err("azure::/x").contains("name is empty"));
    }

    #[test]
    fn local_memory_and_unsupported() {
        assert_eq!(ok("/srv/repo"), Location::Local("/srv/repo".into()));
        assert_eq!(ok("local:/srv/repo"), Location::Local("/srv/repo".into()));
        assert_eq!(ok("relative/dir"), Location::Local("relative/dir".into()));
        // Unknown schemes are local paths, as in restic.
        assert_eq!(ok("foo:bar"), Location::Local("foo:bar".into()));
        assert_eq!(ok("memory:"), Location::Memory("".into()));
        assert_eq!(ok("memory:x"), Location::Memory("x".into()));
        for s in [
            "b2:bucket:p",
            "sftp:host:/p",
            "rest:http://h/",
            "rclone:r:p",
            "swift:c:/p",
        ] {
            assert!(err(s).contains("not supported"), "{s}");
        }
        assert!(err("").contains("empty"));
        assert!(err("local:").contains("empty"));
    }

    #[test]
    fn memory_locations_share_a_store_by_name() {
        let a = open_location("memory:shared-test", false).unwrap();
        let b = open_location("memory:shared-test", false).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let id = stash_repo_format::Id::hash(b"x");
            a.write(stash_repo_format::file_type::FileType::Key, &id, "x".into())
                .await
                .unwrap();
            let got = b
                .read(stash_repo_format::file_type::FileType::Key, &id, None)
                .await
                .unwrap();
            assert_eq!(&got[..], b"x");
        });
    }

    #[test]
    fn missing_local_directory_is_no_repository() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope");
        let e = open_location(p.to_str().unwrap(), false).unwrap_err();
        assert!(matches!(e, Error::NoRepository(_)), "{e}");
        open_location(p.to_str().unwrap(), true).unwrap();
        assert!(p.is_dir());
    }
}
