//! A Repository's backend as the engine opens it: the location string in restic's
//! syntax, the volume a `local` backend needs in the pod, and the settings of the spec
//! that are not in the storage Secret (the S3 region).
//!
//! Credentials stay in the Secret, mounted as files with released Stash's key names
//! (`RESTIC_PASSWORD`, `AWS_ACCESS_KEY_ID`, `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`,
//! `AZURE_ACCOUNT_KEY`, `CA_CERT_DATA`, ...), which the engine reads as they are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Volume, VolumeMount};

use crate::crd::repository::{LocalSpec, RepositorySpec};

/// The pod volume of a `local` backend.
pub const LOCAL_VOLUME: &str = "stash-local-backend";

/// How the engine reaches a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineLocation {
    /// restic's location syntax (`/safe/data`, `s3:http://host/bucket/prefix`, ...).
    pub location: String,
    /// For `local`: the volume and where it is mounted.
    pub volume: Option<(Volume, VolumeMount)>,
    /// Settings the engine uses when the Secret does not set them.
    pub defaults: BTreeMap<String, String>,
}

/// Why a Repository cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("spec.backend names no storage: set one of local, s3, gcs or azure")]
    NoBackend,
    #[error("spec.backend names several storages ({0}): set exactly one")]
    SeveralBackends(String),
    #[error("spec.backend.{0} is not supported by this operator: use local, s3, gcs or azure")]
    Unsupported(&'static str),
    #[error("spec.backend.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// `prefix` cleaned of surrounding slashes, `/`-joined after `base`.
fn with_prefix(base: String, prefix: Option<&str>) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => format!("{base}/{p}"),
        None => base,
    }
}

fn required(field: &'static str, value: &str) -> Result<(), LocationError> {
    if value.trim().is_empty() {
        return Err(LocationError::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

fn local(spec: &LocalSpec) -> Result<EngineLocation, LocationError> {
    if !spec.mount_path.starts_with('/') {
        return Err(LocationError::Invalid {
            field: "local.mountPath",
            reason: format!("{:?} is not an absolute path", spec.mount_path),
        });
    }
    let mut volume = Volume {
        name: LOCAL_VOLUME.to_string(),
        ..Volume::default()
    };
    match (&spec.host_path, &spec.persistent_volume_claim, &spec.nfs) {
        (Some(h), None, None) => volume.host_path = Some(h.clone()),
        (None, Some(c), None) => volume.persistent_volume_claim = Some(c.clone()),
        (None, None, Some(n)) => volume.nfs = Some(n.clone()),
        _ => {
            return Err(LocationError::Invalid {
                field: "local",
                reason: "set exactly one of hostPath, persistentVolumeClaim or nfs".into(),
            })
        }
    }
    let mount = VolumeMount {
        name: LOCAL_VOLUME.to_string(),
        mount_path: spec.mount_path.clone(),
        ..VolumeMount::default()
    };
    let base = spec.mount_path.trim_end_matches('/').to_string();
    let location = with_prefix(base, spec.sub_path.as_deref());
    Ok(EngineLocation {
        location: if location.is_empty() {
            "/".into()
        } else {
            location
        },
        volume: Some((volume, mount)),
        defaults: BTreeMap::new(),
    })
}

/// Maps a Repository's backend to the engine's location (see the module docs).
///
/// # Errors
/// [`LocationError`] for none or several storages, one the engine does not speak
/// (swift, b2, rest), or an empty or malformed field.
pub fn engine_location(spec: &RepositorySpec) -> Result<EngineLocation, LocationError> {
    let b = &spec.backend;
    let set: Vec<&str> = [
        ("local", b.local.is_some()),
        ("s3", b.s3.is_some()),
        ("gcs", b.gcs.is_some()),
        ("azure", b.azure.is_some()),
        ("swift", b.swift.is_some()),
        ("b2", b.b2.is_some()),
        ("rest", b.rest.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect();
    match set.len() {
        0 => return Err(LocationError::NoBackend),
        1 => {}
        _ => return Err(LocationError::SeveralBackends(set.join(", "))),
    }
    let plain = |location: String| EngineLocation {
        location,
        volume: None,
        defaults: BTreeMap::new(),
    };
    if let Some(l) = &b.local {
        return local(l);
    }
    if let Some(s3) = &b.s3 {
        required("s3.endpoint", &s3.endpoint)?;
        required("s3.bucket", &s3.bucket)?;
        // Stash writes endpoints with or without a scheme; restic's syntax keeps an
        // explicit scheme and means https without one.
        let endpoint = s3.endpoint.trim().trim_end_matches('/');
        let mut out = plain(with_prefix(
            format!("s3:{endpoint}/{}", s3.bucket.trim()),
            s3.prefix.as_deref(),
        ));
        if let Some(r) = s3.region.as_deref().filter(|r| !r.is_empty()) {
            out.defaults
                .insert("AWS_DEFAULT_REGION".to_string(), r.to_string());
        }
        if s3.insecure_tls {
            out.defaults.insert(
                stash_agent::backend::cloud::INSECURE_TLS.to_string(),
                "true".to_string(),
            );
        }
        return Ok(out);
    }
    if let Some(g) = &b.gcs {
        required("gcs.bucket", &g.bucket)?;
        let prefix = g.prefix.as_deref().unwrap_or("").trim_matches('/');
        return Ok(plain(format!("gs:{}:/{prefix}", g.bucket.trim())));
    }
    if let Some(a) = &b.azure {
        required("azure.container", &a.container)?;
        let prefix = a.prefix.as_deref().unwrap_or("").trim_matches('/');
        return Ok(plain(format!("azure:{}:/{prefix}", a.container.trim())));
    }
    Err(LocationError::Unsupported(set[0]))
}

/// A backend as Task variables name it (`${provider}`, `${bucket}`, `${prefix}`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendFacts {
    /// `local`, `s3`, `gcs`, `azure`, `swift`, `b2` or `rest`; empty with no backend.
    pub provider: String,
    /// Bucket or container; for `local`, the mount path.
    pub bucket: String,
    pub prefix: String,
    pub endpoint: String,
    pub region: String,
}

/// The facts of `spec`'s backend; the first one set, as [`engine_location`] refuses
/// several.
pub fn backend_facts(spec: &RepositorySpec) -> BackendFacts {
    let b = &spec.backend;
    let facts = |provider: &str, bucket: &str, prefix: Option<&String>| BackendFacts {
        provider: provider.to_string(),
        bucket: bucket.to_string(),
        prefix: prefix.cloned().unwrap_or_default(),
        ..BackendFacts::default()
    };
    if let Some(s) = &b.s3 {
        BackendFacts {
            endpoint: s.endpoint.clone(),
            region: s.region.clone().unwrap_or_default(),
            ..facts("s3", &s.bucket, s.prefix.as_ref())
        }
    } else if let Some(g) = &b.gcs {
        facts("gcs", &g.bucket, g.prefix.as_ref())
    } else if let Some(a) = &b.azure {
        facts("azure", &a.container, a.prefix.as_ref())
    } else if let Some(l) = &b.local {
        facts("local", &l.mount_path, l.sub_path.as_ref())
    } else if let Some(s) = &b.swift {
        facts("swift", &s.container, s.prefix.as_ref())
    } else if let Some(b2) = &b.b2 {
        facts("b2", &b2.bucket, b2.prefix.as_ref())
    } else if let Some(r) = &b.rest {
        BackendFacts {
            endpoint: r.url.clone(),
            ..facts("rest", "", None)
        }
    } else {
        BackendFacts::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::HostPathVolumeSource;

    use super::*;
    use crate::crd::repository::{AzureSpec, Backend, GcsSpec, S3Spec, SwiftSpec};

    fn spec(backend: Backend) -> RepositorySpec {
        RepositorySpec {
            backend,
            ..RepositorySpec::default()
        }
    }

    fn loc(backend: Backend) -> String {
        engine_location(&spec(backend)).unwrap().location
    }

    #[test]
    fn cloud_backends_map_to_restic_locations() {
        let s3 = |endpoint: &str, prefix: Option<&str>| Backend {
            s3: Some(S3Spec {
                endpoint: endpoint.into(),
                bucket: "stash-backup".into(),
                prefix: prefix.map(Into::into),
                ..S3Spec::default()
            }),
            ..Backend::default()
        };
        assert_eq!(
            loc(s3("s3.amazonaws.com", Some("/demo/deployment/"))),
            "s3:s3.amazonaws.com/stash-backup/demo/deployment"
        );
        assert_eq!(
            loc(s3("http://minio.storage.svc:9000/", None)),
            "s3:http://minio.storage.svc:9000/stash-backup"
        );
        let gcs = Backend {
            gcs: Some(GcsSpec {
                bucket: "stash-backup".into(),
                prefix: Some("demo/deployment".into()),
                ..GcsSpec::default()
            }),
            ..Backend::default()
        };
        assert_eq!(loc(gcs), "gs:stash-backup:/demo/deployment");
        let azure = Backend {
            azure: Some(AzureSpec {
                container: "stash".into(),
                ..AzureSpec::default()
            }),
            ..Backend::default()
        };
        assert_eq!(loc(azure), "azure:stash:/");
    }

    #[test]
    fn region_and_insecure_tls_become_default_settings() {
        let b = Backend {
            s3: Some(S3Spec {
                endpoint: "s3.amazonaws.com".into(),
                bucket: "b".into(),
                region: Some("eu-west-1".into()),
                insecure_tls: true,
                ..S3Spec::default()
            }),
            ..Backend::default()
        };
        let l = engine_location(&spec(b)).unwrap();
        assert_eq!(l.defaults["AWS_DEFAULT_REGION"], "eu-west-1");
        assert_eq!(l.defaults["STASH_INSECURE_TLS"], "true");
    }

    #[test]
    fn local_backends_bring_their_volume() {
        let b = Backend {
            local: Some(LocalSpec {
                host_path: Some(HostPathVolumeSource {
                    path: "/data/stash-repo".into(),
                    ..HostPathVolumeSource::default()
                }),
                mount_path: "/safe/data/".into(),
                sub_path: Some("demo".into()),
                ..LocalSpec::default()
            }),
            ..Backend::default()
        };
        let l = engine_location(&spec(b)).unwrap();
        assert_eq!(l.location, "/safe/data/demo");
        let (v, m) = l.volume.unwrap();
        assert_eq!(v.host_path.unwrap().path, "/data/stash-repo");
        assert_eq!(m.mount_path, "/safe/data/");
        assert_eq!(m.name, v.name);
    }

    #[test]
    fn bad_backends_name_the_field() {
        assert_eq!(
            engine_location(&spec(Backend::default())),
            Err(LocationError::NoBackend)
        );
        let two = Backend {
            gcs: Some(GcsSpec::default()),
            azure: Some(AzureSpec::default()),
            ..Backend::default()
        };
        assert_eq!(
            engine_location(&spec(two)).unwrap_err().to_string(),
            "spec.backend names several storages (gcs, azure): set exactly one"
        );
        let swift = Backend {
            swift: Some(SwiftSpec::default()),
            ..Backend::default()
        };
        assert_eq!(
            engine_location(&spec(swift)),
            Err(LocationError::Unsupported("swift"))
        );
        let empty_bucket = Backend {
            gcs: Some(GcsSpec::default()),
            ..Backend::default()
        };
        assert_eq!(
            engine_location(&spec(empty_bucket))
                .unwrap_err()
                .to_string(),
            "spec.backend.gcs.bucket: must not be empty"
        );
        let relative = Backend {
            local: Some(LocalSpec {
                mount_path: "safe".into(),
                ..LocalSpec::default()
            }),
            ..Backend::default()
        };
        assert!(engine_location(&spec(relative))
            .unwrap_err()
            .to_string()
            .contains("local.mountPath"));
    }

    #[test]
    fn backend_facts_name_provider_bucket_and_prefix() {
        let s3 = spec(Backend {
            s3: Some(S3Spec {
                endpoint: "http://127.0.0.1:9000".into(),
                bucket: "b".into(),
                prefix: Some("demo/pvc".into()),
                region: Some("eu-west-1".into()),
                ..S3Spec::default()
            }),
            ..Backend::default()
        });
        let f = backend_facts(&s3);
        assert_eq!(
            (f.provider.as_str(), f.bucket.as_str(), f.prefix.as_str()),
            ("s3", "b", "demo/pvc")
        );
        assert_eq!(
            (f.endpoint.as_str(), f.region.as_str()),
            ("http://127.0.0.1:9000", "eu-west-1")
        );
        let gcs = spec(Backend {
            gcs: Some(GcsSpec {
                bucket: "stash-backup-repo".into(),
                prefix: Some("default/deployment/stash-demo".into()),
                ..GcsSpec::default()
            }),
            ..Backend::default()
        });
        assert_eq!(backend_facts(&gcs).provider, "gcs");
        assert_eq!(
            backend_facts(&spec(Backend::default())),
            BackendFacts::default()
        );
    }
}
