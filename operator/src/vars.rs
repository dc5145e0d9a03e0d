//! `${name}` placeholders of Tasks and Functions, resolved before a Job is made.
//!
//! Two spellings live side by side: the seed's lower-case names (`${provider}`,
//! `${repoDir}`, `${target.namespace}`, `${output-dir}`) and released Stash's
//! upper-snake ones (`${TARGET_NAME}`, `${REPOSITORY_PREFIX}`), with released Stash's
//! default form `${NAME:=default}` (`${NAME:-default}` too, as envsubst reads it).
//! A name that is neither known nor defaulted is an error naming it: an empty string
//! in a command line (`--path=`) would back up or restore the wrong thing silently.
//!
//! Resolution is two-level, as in the seed's Tasks: a Task's inputs (seed) or params
//! (released) are resolved against what the operator knows ([`job_vars`]), then the
//! Function's strings against those inputs and the same facts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::crd::common::RetentionPolicy;

/// Why a string could not be resolved; `at` says where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("{at}: unknown variable ${{{name}}} (known: {known})")]
    Unknown {
        at: String,
        name: String,
        known: String,
    },
    #[error("{at}: unclosed ${{ in {text:?}")]
    Unclosed { at: String, text: String },
    #[error("{at}: {text:?} has a placeholder without a name")]
    Nameless { at: String, text: String },
}

/// Variables by name; names are case-sensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub fn new() -> Self {
        Vars::default()
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// These variables plus `inputs`, each input's value first resolved against these
    /// (a Task's `repoDir: ${prefix}`); inputs shadow variables of the same name.
    pub fn with_inputs<'a>(
        &self,
        at: &str,
        inputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vars, VarError> {
        let mut out = self.clone();
        for (name, value) in inputs {
            let value = self.resolve(&format!("{at}.{name}"), value)?;
            out.set(name, value);
        }
        Ok(out)
    }

    /// `text` with every placeholder replaced. A `$` not followed by `{` is kept.
    pub fn resolve(&self, at: &str, text: &str) -> Result<String, VarError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let body = &rest[start + 2..];
            let Some(end) = body.find('}') else {
                return Err(VarError::Unclosed {
                    at: at.to_string(),
                    text: text.to_string(),
                });
            };
            let inner = &body[..end];
            let (name, default) = match inner.find(":=").or_else(|| inner.find(":-")) {
                Some(i) => (&inner[..i], Some(&inner[i + 2..])),
                None => (inner, None),
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(VarError::Nameless {
                    at: at.to_string(),
                    text: text.to_string(),
                });
            }
            match (self.get(name), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(VarError::Unknown {
                        at: at.to_string(),
                        name: name.to_string(),
                        known: self.names(),
                    })
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Every string inside `value` resolved (object keys are kept), for the seed's
    /// whole-container Functions; `at` grows with the JSON path.
    pub fn resolve_json(&self, at: &str, value: &Value) -> Result<Value, VarError> {
        Ok(match value {
            Value::String(s) => Value::String(self.resolve(at, s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.resolve_json(&format!("{at}[{i}]"), v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve_json(&format!("{at}.{k}"), v)?)))
                    .collect::<Result<_, VarError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn names(&self) -> String {
        const SHOWN: usize = 12;
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).take(SHOWN).collect();
        if self.0.len() > SHOWN {
            names.push("...");
        }
        names.join(", ")
    }
}

/// What a backup or restore Job is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session<'a> {
    Backup {
        session: &'a str,
        configuration: &'a str,
    },
    Restore {
        session: &'a str,
    },
}

/// The object a Job backs up or restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    /// The plural resource name (`persistentvolumeclaims`).
    pub resource: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
}

/// The Repository a Job uses, as its spec names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repository<'a> {
    pub name: &'a str,
    /// `local`, `s3`, `gcs` or `azure`.
    pub provider: &'a str,
    /// Bucket or container; empty for `local`.
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub endpoint: &'a str,
    pub region: &'a str,
    pub secret_name: &'a str,
}

/// Everything the operator knows when it makes a Job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFacts<'a> {
    pub session: Session<'a>,
    pub target: Target<'a>,
    pub repository: Repository<'a>,
    /// The snapshot host name (`host-0`, a PVC's name, `database`).
    pub hostname: &'a str,
    /// A backup's policy; a backup without one has every `RETENTION_*` variable at
    /// its "keep nothing" value, a restore has none of them.
    pub retention: Option<&'a RetentionPolicy>,
    /// The Job's scratch directory and its volume.
    pub interim_dir: &'a str,
    pub interim_volume: &'a str,
    /// Where a Function writes its JSON output for the post-backup step, and its volume.
    pub output_dir: &'a str,
    pub output_volume: &'a str,
    /// The seed's `task.database` (pgBackup); empty means every database.
    pub databases: &'a str,
    /// The operator's Pushgateway; empty means none (`enableMetric` is then false).
    pub pushgateway: &'a str,
}

/// The variables a Task and its Functions may name, in both spellings.
pub fn job_vars(f: &JobFacts<'_>) -> Vars {
    let mut v = Vars::new();
    let r = &f.repository;
    let t = &f.target;
    for (seed, released, value) in [
        ("provider", "REPOSITORY_PROVIDER", r.provider),
        ("bucket", "REPOSITORY_BUCKET", r.bucket),
        ("prefix", "REPOSITORY_PREFIX", r.prefix),
        ("endpoint", "REPOSITORY_ENDPOINT", r.endpoint),
        ("region", "REPOSITORY_REGION", r.region),
        ("secretName", "REPOSITORY_SECRET_NAME", r.secret_name),
        ("repoName", "REPOSITORY_NAME", r.name),
        ("hostname", "HOSTNAME", f.hostname),
        ("kind", "TARGET_KIND", t.kind),
        ("name", "TARGET_NAME", t.name),
        ("target.namespace", "TARGET_NAMESPACE", t.namespace),
        ("outputDir", "INTERIM_DATA_DIR", f.interim_dir),
        ("tmpVolumeName", "INTERIM_VOLUME", f.interim_volume),
        ("output-dir", "OUTPUT_DIR", f.output_dir),
        ("output-volume-name", "OUTPUT_VOLUME", f.output_volume),
        ("databases", "TARGET_DATABASES", f.databases),
    ] {
        v.set(seed, value).set(released, value);
    }
    v.set("target.kind", t.kind)
        .set("target.name", t.name)
        .set("TARGET_API_VERSION", t.api_version)
        .set("TARGET_RESOURCE", t.resource)
        .set("SOURCE_HOSTNAME", f.hostname)
        .set("repoDir", r.prefix);
    match f.session {
        Session::Backup {
            session,
            configuration,
        } => {
            v.set("backupSessionName", session)
                .set("BACKUP_SESSION", session)
                .set("INVOKER_KIND", "BackupConfiguration")
                .set("INVOKER_NAME", configuration);
        }
        Session::Restore { session } => {
            v.set("recoveryConfigurationName", session)
                .set("RESTORE_SESSION", session)
                .set("INVOKER_KIND", "RestoreSession")
                .set("INVOKER_NAME", session);
        }
    }
    // The operator serves its own /metrics either way; with a Pushgateway configured,
    // the Functions are told to push there too (the seed's `--metrics.*` arguments).
    let push = if f.pushgateway.is_empty() {
        "false"
    } else {
        "true"
    };
    v.set("enableMetric", push)
        .set("ENABLE_METRICS", push)
        .set("pushgatewayURL", f.pushgateway)
        .set("PROMETHEUS_PUSHGATEWAY_URL", f.pushgateway);
    // The seed's clusterBackup input: strip server-set fields (a Task param overrides).
    v.set("sanitize", "true").set("SANITIZE", "true");
    let keep_nothing = RetentionPolicy::default();
    let retention = match f.session {
        Session::Backup { .. } => Some(f.retention.unwrap_or(&keep_nothing)),
        Session::Restore { .. } => None,
    };
    if let Some(p) = retention {
        let name = p.name.clone().unwrap_or_default();
        v.set("retentionPolicyName", name.clone())
            .set("RETENTION_POLICY_NAME", name)
            .set("RETENTION_PRUNE", p.prune.to_string())
            .set("RETENTION_DRY_RUN", p.dry_run.to_string())
            .set("RETENTION_KEEP_TAGS", p.keep_tags.join(","));
        let mut value = Vec::new();
        for (flag, released, keep) in [
            ("last", "RETENTION_KEEP_LAST", p.keep_last),
            ("hourly", "RETENTION_KEEP_HOURLY", p.keep_hourly),
            ("daily", "RETENTION_KEEP_DAILY", p.keep_daily),
            ("weekly", "RETENTION_KEEP_WEEKLY", p.keep_weekly),
            ("monthly", "RETENTION_KEEP_MONTHLY", p.keep_monthly),
            ("yearly", "RETENTION_KEEP_YEARLY", p.keep_yearly),
        ] {
            v.set(
                released,
                keep.map(|k| k.to_string()).unwrap_or_else(|| "0".into()),
            );
            if let Some(k) = keep {
                value.push(format!("keep-{flag}={k}"));
            }
        }
        v.set("retentionPolicyValue", value.join(","));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let mut v = Vars::new();
        for (n, x) in pairs {
            v.set(*n, *x);
        }
        v
    }

    #[test]
    fn placeholders_of_both_spellings_and_defaults() {
        let v = vars(&[
            ("provider", "s3"),
            ("TARGET_NAME", "db"),
            ("output-dir", "/out"),
        ]);
        assert_eq!(
            v.resolve(
                "t",
                "--provider=${provider} --name=${TARGET_NAME} ${output-dir}/x"
            )
            .unwrap(),
            "--provider=s3 --name=db /out/x"
        );
        assert_eq!(v.resolve("t", "${ENABLE_CACHE:=true}").unwrap(), "true");
        assert_eq!(v.resolve("t", "--pg-args=${args:=}").unwrap(), "--pg-args=");
        assert_eq!(v.resolve("t", "${provider:-gcs}").unwrap(), "s3");
        assert_eq!(
            v.resolve("t", "cost $5, $(x) $").unwrap(),
            "cost $5, $(x) $"
        );
        assert_eq!(v.resolve("t", "").unwrap(), "");
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        let v = vars(&[("provider", "s3")]);
        let e = v
            .resolve("Function pg-backup args[2]", "--path=${repoDir}")
            .unwrap_err();
        assert_eq!(
            e,
            VarError::Unknown {
                at: "Function pg-backup args[2]".into(),
                name: "repoDir".into(),
                known: "provider".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "Function pg-backup args[2]: unknown variable ${repoDir} (known: provider)"
        );
        assert!(matches!(
            v.resolve("x", "--a=${provider"),
            Err(VarError::Unclosed { .. })
        ));
        assert!(matches!(
            v.resolve("x", "${}"),
            Err(VarError::Nameless { .. })
        ));
        assert!(matches!(
            v.resolve("x", "${:=d}"),
            Err(VarError::Nameless { .. })
        ));
    }

    #[test]
    fn a_value_is_not_resolved_again() {
        let v = vars(&[("a", "${b}"), ("b", "no")]);
        assert_eq!(v.resolve("t", "${a}").unwrap(), "${b}");
    }

    #[test]
    fn task_inputs_resolve_against_the_facts_and_shadow_them() {
        let facts = vars(&[("prefix", "ns/db"), ("name", "db")]);
        let inputs = [("repoDir", "${prefix}"), ("name", "other-${name}")];
        let v = facts.with_inputs("Task pgBackup", inputs).unwrap();
        assert_eq!(v.get("repoDir"), Some("ns/db"));
        assert_eq!(v.get("name"), Some("other-db"));
        let e = facts
            .with_inputs("Task pgBackup", [("x", "${nope}")])
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Task pgBackup.x: unknown variable ${nope}"));
    }

    #[test]
    fn json_strings_resolve_with_their_path() {
        let v = vars(&[("tmpVolumeName", "tmp"), ("outputDir", "/tmp/out")]);
        let container = serde_json::json!({
            "args": ["--output-dir=${outputDir}", 3],
            "volumeMounts": [{"name": "${tmpVolumeName}", "mountPath": "/tmp"}],
        });
        assert_eq!(
            v.resolve_json("Function f", &container).unwrap(),
            serde_json::json!({
                "args": ["--output-dir=/tmp/out", 3],
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            })
        );
        let bad = serde_json::json!({"env": [{"value": "${x}"}]});
        assert!(v
            .resolve_json("Function f", &bad)
            .unwrap_err()
            .to_string()
            .starts_with("Function f.env[0].value: unknown variable ${x}"));
    }

    fn facts<'a>(retention: Option<&'a RetentionPolicy>) -> JobFacts<'a> {
        JobFacts {
            session: Session::Backup {
                session: "pvc-backup-1",
                configuration: "pvc-backup",
            },
            target: Target {
                api_version: "v1",
                kind: "PersistentVolumeClaim",
                resource: "persistentvolumeclaims",
                name: "data",
                namespace: "demo",
            },
            repository: Repository {
                name: "gcs-repo",
                provider: "gcs",
                bucket: "stash-backup",
                prefix: "demo/data",
                secret_name: "gcs-secret",
                ..Repository::default()
            },
            hostname: "data",
            retention,
            interim_dir: "/tmp/stash",
            interim_volume: "stash-tmp",
            output_dir: "/tmp/output",
            output_volume: "stash-output",
            databases: "",
            pushgateway: "",
        }
    }

    #[test]
    fn the_seed_task_inputs_and_released_names_all_resolve() {
        let policy = RetentionPolicy {
            name: Some("keep-last-5".into()),
            keep_last: Some(5),
            keep_daily: Some(7),
            prune: true,
            ..RetentionPolicy::default()
        };
        let v = job_vars(&facts(Some(&policy)));
        // Every input of the seed's pgBackup/clusterBackup Tasks.
        for name in [
            "enableMetric",
            "pushgatewayURL",
            "databases",
            "provider",
            "hostname",
            "prefix",
            "outputDir",
            "retentionPolicyName",
            "retentionPolicyValue",
            "kind",
            "name",
            "tmpVolumeName",
            "secretName",
            "repoName",
            "backupSessionName",
            "output-dir",
            "output-volume-name",
            "target.namespace",
            "target.name",
        ] {
            assert!(v.get(name).is_some(), "{name} unknown");
        }
        assert_eq!(
            v.resolve("t", "${target.namespace}/${target.name}")
                .unwrap(),
            "demo/data"
        );
        assert_eq!(
            v.resolve(
                "t",
                "${TARGET_API_VERSION} ${TARGET_KIND} ${TARGET_RESOURCE} ${TARGET_NAMESPACE}/${TARGET_NAME}"
            )
            .unwrap(),
            "v1 PersistentVolumeClaim persistentvolumeclaims demo/data"
        );
        assert_eq!(
            v.resolve(
                "t",
                "${REPOSITORY_PROVIDER}:${REPOSITORY_BUCKET}:/${REPOSITORY_PREFIX}"
            )
            .unwrap(),
            "gcs:stash-backup:/demo/data"
        );
        assert_eq!(
            v.get("retentionPolicyValue"),
            Some("keep-last=5,keep-daily=7")
        );
        assert_eq!(v.get("RETENTION_KEEP_LAST"), Some("5"));
        assert_eq!(v.get("RETENTION_KEEP_HOURLY"), Some("0"));
        assert_eq!(v.get("RETENTION_PRUNE"), Some("true"));
        assert_eq!(v.get("INVOKER_NAME"), Some("pvc-backup"));
        assert_eq!(v.get("BACKUP_SESSION"), Some("pvc-backup-1"));
        assert_eq!(v.get("RESTORE_SESSION"), None);
    }

    #[test]
    fn a_restore_names_its_session_and_no_retention() {
        let mut f = facts(None);
        f.session = Session::Restore {
            session: "pvc-restore",
        };
        let v = job_vars(&f);
        assert_eq!(v.get("RESTORE_SESSION"), Some("pvc-restore"));
        assert_eq!(v.get("recoveryConfigurationName"), Some("pvc-restore"));
        assert_eq!(v.get("INVOKER_KIND"), Some("RestoreSession"));
        assert_eq!(v.get("BACKUP_SESSION"), None);
        assert!(v.resolve("t", "${RETENTION_KEEP_LAST}").is_err());
    }
}
