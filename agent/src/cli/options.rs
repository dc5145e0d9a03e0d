//! The global flags that shape the connection to the backend: restic's `-o
//! key=value` extended options, `--cacert`, `--insecure-tls` and the bandwidth
//! limits, turned into [`OpenOptions`].

use std::path::PathBuf;

use crate::backend::{cloud::INSECURE_TLS, OpenOptions};

/// The `-o` keys understood, with the setting each becomes.
const KEYS: &[(&str, Setting)] = &[
    ("s3.connections", Setting::Connections),
    ("gs.connections", Setting::Connections),
    ("azure.connections", Setting::Connections),
    ("local.connections", Setting::Connections),
    ("s3.region", Setting::Var("AWS_DEFAULT_REGION")),
    (
        "azure.endpoint-suffix",
        Setting::Var("AZURE_ENDPOINT_SUFFIX"),
    ),
];

#[derive(Debug, Clone, Copy)]
enum Setting {
    Connections,
    Var(&'static str),
}

/// What the flags say about the backend.
#[derive(Debug, Clone, Default)]
pub struct BackendFlags {
    pub options: Vec<String>,
    pub cacert: Vec<PathBuf>,
    pub insecure_tls: bool,
    /// KiB/s.
    pub limit_upload: Option<u64>,
    pub limit_download: Option<u64>,
}

impl BackendFlags {
    /// Adds the flags to `opts`.
    ///
    /// # Errors
    /// An unknown `-o` key, a value that is not `key=value` or not a number where
    /// one is needed, or a `--cacert` file that cannot be read.
    pub fn apply(&self, opts: &mut OpenOptions) -> anyhow::Result<()> {
        for o in &self.options {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid option {o:?}: use key=value"))?;
            let setting = KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                    anyhow::anyhow!("unknown option {key:?} (known: {})", known.join(", "))
                })?;
            match setting {
                Setting::Connections => {
                    let n: usize = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        anyhow::anyhow!("{key}: {value:?} is not a positive number")
                    })?;
                    opts.connections = Some(n);
                }
                Setting::Var(var) => {
                    opts.overrides.insert(var.to_string(), value.to_string());
                }
            }
        }
        if !self.cacert.is_empty() {
            let mut pem = std::env::var("CA_CERT_DATA").unwrap_or_default();
            for f in &self.cacert {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("--cacert {}: {e}", f.display()))?;
                pem.push('\n');
                pem.push_str(&text);
            }
            opts.overrides.insert("CA_CERT_DATA".into(), pem);
        }
        if self.insecure_tls {
            opts.overrides.insert(INSECURE_TLS.into(), "true".into());
        }
        opts.limit_upload = self.limit_upload.map(|k| k * 1024);
        opts.limit_download = self.limit_download.map(|k| k * 1024);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(options: &[&str]) -> anyhow::Result<OpenOptions> {
        let flags = BackendFlags {
            options: options.iter().map(|s| s.to_string()).collect(),
            insecure_tls: true,
            limit_upload: Some(100),
            ..BackendFlags::default()
        };
        let mut o = OpenOptions::default();
        flags.apply(&mut o).map(|()| o)
    }

    #[test]
    fn options_become_settings_and_unknown_ones_are_errors() {
        let o = applied(&["s3.connections=3", "s3.region=eu-central-1"]).unwrap();
        assert_eq!(o.connections, Some(3));
        assert_eq!(o.overrides["AWS_DEFAULT_REGION"], "eu-central-1");
        assert_eq!(o.overrides[INSECURE_TLS], "true");
        assert_eq!(o.limit_upload, Some(102_400));
        let e = applied(&["s3.storage-class=GLACIER"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown option \"s3.storage-class\""), "{e}");
        assert!(applied(&["s3.connections=0"]).is_err());
        assert!(applied(&["s3.connections"])
            .unwrap_err()
            .to_string()
            .contains("key=value"));
    }
}
