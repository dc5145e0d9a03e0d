//! The optional Pushgateway push of the seed's Function arguments
//! (`--metrics.enabled`, `--metrics.pushgateway-url`, `--metrics.labels`): after its
//! work, a sidecar, restore init container or Job step pushes its host's result to a
//! Pushgateway, for a Prometheus that cannot scrape the operator. The operator's
//! `/metrics` stays the source of truth (it is computed from the sessions' status);
//! a push is a copy, so a failed push is a warning, never a failed backup.
//!
//! Each host's result replaces its own group: `job` (`stash-backup` or
//! `stash-restore`), `namespace`, `invoker_name`, `host` and the `--metrics.labels`,
//! every value base64url-encoded in the path so any name is safe. The samples carry
//! the remaining labels of the operator's families (`invoker_kind`, `repository`,
//! `target_kind`, `target_name`).

use std::time::Duration;

use base64::Engine as _;

use kube::ResourceExt;

use crate::{
    backup_metrics::{Families, Labels},
    crd::{
        backup_configuration::BackupConfiguration, backup_session::HostBackupStats,
        common::TargetRef, restore_session::RestoreSession,
    },
    restore::HostResult,
    runner::Pod,
};

/// How long a push may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the metrics flags are unusable, or a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--metrics.labels: {0:?} is not name=value")]
    Label(String),
    #[error("--metrics.pushgateway-url {0:?} is not an http(s) URL")]
    Url(String),
    #[error("pushing metrics to {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Where a runner pushes its host's metrics, and the extra grouping labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushgateway {
    url: String,
    labels: Vec<(String, String)>,
}

impl Pushgateway {
    /// The Pushgateway the flags ask for: none unless enabled with a URL (the seed's
    /// Functions pass `--metrics.enabled=false` and an empty URL when there is none).
    ///
    /// # Errors
    /// A URL that is not http(s), a label that is not `name=value`.
    pub fn from_flags(enabled: bool, url: &str, labels: &str) -> Result<Option<Self>, PushError> {
        let url = url.trim().trim_end_matches('/');
        if !enabled || url.is_empty() {
            return Ok(None);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PushError::Url(url.to_string()));
        }
        Ok(Some(Pushgateway {
            url: url.to_string(),
            labels: parse_labels(labels)?,
        }))
    }

    /// The URL of the group `job` with `grouping` and the extra labels.
    fn group_url(&self, job: &str, grouping: &[(&str, &str)]) -> String {
        let mut url = format!("{}/metrics/job@base64/{}", self.url, b64(job));
        let extra = self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in grouping.iter().copied().chain(extra) {
            url.push_str(&format!("/{name}@base64/{}", b64(value)));
        }
        url
    }

    /// Replaces the group's metrics with `body` (the text exposition format).
    async fn put(
        &self,
        job: &str,
        grouping: &[(&str, &str)],
        body: String,
    ) -> Result<(), PushError> {
        let url = self.group_url(job, grouping);
        let err = |source| PushError::Http {
            url: self.url.clone(),
            source,
        };
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(err)?
            .put(&url)
            .header("content-type", "text/plain; version=0.0.4")
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?;
        Ok(())
    }

    /// Pushes one host's backup result; a failure is logged.
    pub async fn backup_host(&self, session: &Session<'_>, host: &HostBackupStats) {
        let body = crate::backup_metrics::host_text(&session.sample_labels(), host);
        let grouping = session.grouping(&host.hostname);
        if let Err(e) = self.put("stash-backup", &grouping, body).await {
            eprintln!("warning: {e}");
        }
    }

    /// Pushes one host's restore result; a failure is logged.
    pub async fn restore_host(&self, session: &Session<'_>, host: &str, result: &HostResult) {
        let body = restore_text(&session.sample_labels(), result);
        if let Err(e) = self
            .put("stash-restore", &session.grouping(host), body)
            .await
        {
            eprintln!("warning: {e}");
        }
    }
}

/// Pushes `host`'s backup result for `bc`, when `pod` pushes at all.
pub async fn backup_result(pod: &Pod, bc: &BackupConfiguration, host: &HostBackupStats) {
    let Some(gateway) = &pod.metrics else { return };
    let target = bc
        .spec
        .target
        .as_ref()
        .and_then(|t| t.reference.clone())
        .unwrap_or_default();
    let name = bc.name_any();
    let session = Session::new(
        &pod.namespace,
        "BackupConfiguration",
        &name,
        &bc.spec.repository.name,
        &target,
    );
    gateway.backup_host(&session, host).await;
}

/// Pushes `host`'s restore result for `rs`, when `pod` pushes at all.
pub async fn restore_result(pod: &Pod, rs: &RestoreSession, host: &str, result: &HostResult) {
    let Some(gateway) = &pod.metrics else { return };
    let target = rs
        .spec
        .target
        .as_ref()
        .and_then(|t| t.reference.clone())
        .unwrap_or_default();
    let name = rs.name_any();
    let session = Session::new(
        &pod.namespace,
        "RestoreSession",
        &name,
        &rs.spec.repository.name,
        &target,
    );
    gateway.restore_host(&session, host, result).await;
}

/// Whose result a push carries.
#[derive(Debug, Clone)]
pub struct Session<'a> {
    pub namespace: &'a str,
    /// `BackupConfiguration` or `RestoreSession`.
    pub invoker_kind: &'a str,
    pub invoker_name: &'a str,
    pub repository: &'a str,
    pub target_kind: &'a str,
    pub target_name: &'a str,
}

impl<'a> Session<'a> {
    fn new(
        namespace: &'a str,
        invoker_kind: &'a str,
        invoker_name: &'a str,
        repository: &'a str,
        target: &'a TargetRef,
    ) -> Self {
        Session {
            namespace,
            invoker_kind,
            invoker_name,
            repository,
            target_kind: &target.kind,
            target_name: &target.name,
        }
    }

    fn grouping<'h>(&'h self, host: &'h str) -> [(&'static str, &'h str); 3] {
        [
            ("namespace", self.namespace),
            ("invoker_name", self.invoker_name),
            ("host", host),
        ]
    }

    fn sample_labels(&self) -> Labels {
        vec![
            ("invoker_kind", self.invoker_kind.to_string()),
            ("repository", self.repository.to_string()),
            ("target_kind", self.target_kind.to_string()),
            ("target_name", self.target_name.to_string()),
        ]
    }
}

/// The text exposition of one host's restore result.
fn restore_text(labels: &Labels, result: &HostResult) -> String {
    let mut f = Families::default();
    f.add(
        "stash_restore_host_restore_success",
        "1 when the host's restore succeeded, 0 when it failed.",
        labels,
        if result.error.is_none() { 1.0 } else { 0.0 },
    );
    f.add(
        "stash_restore_host_restore_duration_seconds",
        "How long the host's restore took.",
        labels,
        result.took.as_secs_f64(),
    );
    let mut out = String::new();
    f.write(&mut out);
    out
}

fn b64(value: &str) -> String {
    // The Pushgateway reads an empty value as `=`.
    if value.is_empty() {
        return "=".to_string();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value)
}

/// `--metrics.labels`: `name=value` pairs split by commas, as the seed writes them
/// (`"workload-kind=${workloadKind},workload-name=${workloadName}"`, quotes included:
/// no shell strips them in a container's args). Names become Prometheus label names
/// (`workload-kind` is `workload_kind`); a pair with an empty value is left out.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, PushError> {
    let text = text.trim().trim_matches(|c| c == '"' || c == '\'');
    let mut labels = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| PushError::Label(pair.to_string()))?;
        let mut name: String = name
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if name.is_empty() || name.starts_with("__") {
            return Err(PushError::Label(pair.to_string()));
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert(0, '_');
        }
        let value = value.trim();
        if !value.is_empty() && !labels.iter().any(|(n, _)| *n == name) {
            labels.push((name, value.to_string()));
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_flags_enable_a_push_only_with_a_url() {
        assert_eq!(
            Pushgateway::from_flags(false, "http://pg:9091", "").unwrap(),
            None
        );
        assert_eq!(Pushgateway::from_flags(true, " ", "").unwrap(), None);
        let p = Pushgateway::from_flags(
            true,
            "http://pg:9091/",
            "\"workload-kind=Deployment,workload-name=stash-demo,empty=\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.url, "http://pg:9091");
        assert_eq!(
            p.labels,
            vec![
                ("workload_kind".to_string(), "Deployment".to_string()),
                ("workload_name".to_string(), "stash-demo".to_string()),
            ]
        );
        assert!(matches!(
            Pushgateway::from_flags(true, "pg:9091", ""),
            Err(PushError::Url(_))
        ));
        assert!(matches!(
            Pushgateway::from_flags(true, "http://pg", "novalue"),
            Err(PushError::Label(_))
        ));
        assert!(matches!(
            Pushgateway::from_flags(true, "http://pg", "__name__=x"),
            Err(PushError::Label(_))
        ));
    }

    #[test]
    fn group_urls_encode_every_value() {
        let p = Pushgateway::from_flags(true, "http://pg:9091", "team=a/b")
            .unwrap()
            .unwrap();
        let url = p.group_url("stash-backup", &[("namespace", "demo"), ("host", "")]);
        assert_eq!(
            url,
            "http://pg:9091/metrics/job@base64/c3Rhc2gtYmFja3Vw/namespace@base64/ZGVtbw\
             /host@base64/=/team@base64/YS9i"
        );
    }

    #[test]
    fn restore_text_is_the_exposition_format() {
        let labels: Labels = vec![("invoker_kind", "RestoreSession".into())];
        let ok = restore_text(
            &labels,
            &HostResult {
                took: Duration::from_millis(1500),
                error: None,
            },
        );
        assert!(ok.contains(
            "# TYPE stash_restore_host_restore_success gauge\n\
             stash_restore_host_restore_success{invoker_kind=\"RestoreSession\"} 1\n"
        ));
        assert!(ok.contains(
            "stash_restore_host_restore_duration_seconds{invoker_kind=\"RestoreSession\"} 1.5\n"
        ));
        let failed = restore_text(
            &labels,
            &HostResult {
                took: Duration::ZERO,
                error: Some("x".into()),
            },
        );
        assert!(failed
            .contains("stash_restore_host_restore_success{invoker_kind=\"RestoreSession\"} 0\n"));
    }
}
