//! Backup metrics a team can alert on, with released Stash's names, computed from the
//! BackupConfigurations and the BackupSessions' status at every scrape: they survive an
//! operator restart because the cluster holds them, not the process. The sessions the
//! history limit keeps are the last finished one and the last successful one (see
//! `trim_history`), which is all these need.
//!
//! Labels: `namespace`, `invoker_kind`, `invoker_name`, `repository` on every family;
//! `target_kind`, `target_name` on target and host families; `host` on host families.

use std::{collections::BTreeMap, fmt::Write};

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use crate::{
    controller::invoker_name,
    crd::{
        backup_configuration::BackupConfiguration,
        backup_session::{BackupSession, BackupSessionStatus, HostBackupStats},
    },
    schedule::{parse_duration, Schedule},
    session::{FAILED, SUCCEEDED},
    time::from_k8s,
};

/// How many ticks of a schedule are looked at for its longest gap.
const TICKS: usize = 16;

pub(crate) type Labels = Vec<(&'static str, String)>;

/// One family's help text and samples.
type Family = (&'static str, Vec<(Labels, f64)>);

/// Gauges by name, each with its help and samples, in the order they were first seen.
#[derive(Default)]
pub(crate) struct Families {
    order: Vec<&'static str>,
    by_name: BTreeMap<&'static str, Family>,
}

impl Families {
    pub(crate) fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &Labels,
        value: f64,
    ) {
        let entry = self.by_name.entry(name).or_insert_with(|| {
            self.order.push(name);
            (help, Vec::new())
        });
        entry.1.push((labels.clone(), value));
    }

    pub(crate) fn write(&self, out: &mut String) {
        for name in &self.order {
            let (help, samples) = &self.by_name[name];
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                let text: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", text.join(","));
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds of a duration as the status writes it (`1m2.345s`, `350ms`).
pub fn seconds(text: &str) -> Option<f64> {
    if let Ok(d) = parse_duration(text) {
        return Some(d.as_secs_f64());
    }
    let (number, per_second) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("µs").or_else(|| text.strip_suffix("us")) {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix("ns") {
        (n, 1e9)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n / per_second)
}

/// Bytes of a size as the status writes it (`1.720 GiB`, `12 B`): three decimals of
/// the unit, so good to about a thousandth.
pub fn bytes(text: &str) -> Option<f64> {
    let (number, unit) = text.trim().split_once(' ')?;
    let power = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        .iter()
        .position(|u| *u == unit)?;
    Some(number.parse::<f64>().ok()? * 1024f64.powi(power as i32))
}

/// The longest gap between the schedule's ticks after `now`: the interval within which
/// a backup is expected.
pub fn expected_interval(
    schedule: &Schedule,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<f64> {
    let mut t = schedule.next_after(now, anchor)?;
    let mut longest = 0.0f64;
    for _ in 0..TICKS {
        let Some(next) = schedule.next_after(t, anchor) else {
            break;
        };
        longest = longest.max((next - t).as_seconds_f64());
        t = next;
    }
    (longest > 0.0).then_some(longest)
}

fn finished_at(status: &BackupSessionStatus) -> Option<f64> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "SessionFinished")
        .map(|c| from_k8s(&c.last_transition_time).timestamp() as f64)
}

fn success(phase: Option<&str>) -> Option<f64> {
    match phase {
        Some(SUCCEEDED) => Some(1.0),
        Some(FAILED) => Some(0.0),
        _ => None,
    }
}

/// Appends the backup families for `configurations` and their `sessions` to `out`.
pub fn render(
    out: &mut String,
    configurations: &[BackupConfiguration],
    sessions: &[BackupSession],
    now: DateTime<Utc>,
) {
    let mut f = Families::default();
    for bc in configurations {
        let ns = bc.namespace().unwrap_or_default();
        let name = bc.name_any();
        let base: Labels = vec![
            ("namespace", ns.clone()),
            ("invoker_kind", "BackupConfiguration".into()),
            ("invoker_name", name.clone()),
            ("repository", bc.spec.repository.name.clone()),
        ];
        if let Some(created) = bc.metadata.creation_timestamp.as_ref().map(from_k8s) {
            f.add(
                "stash_backupconfiguration_created",
                "When the BackupConfiguration was created (Unix time).",
                &base,
                created.timestamp() as f64,
            );
            let schedule = bc
                .spec
                .schedule
                .as_deref()
                .filter(|_| !bc.spec.paused)
                .and_then(|s| s.parse::<Schedule>().ok());
            if let Some(i) = schedule.and_then(|s| expected_interval(&s, created, now)) {
                f.add(
                    "stash_backup_schedule_interval_seconds",
                    "The longest gap between the schedule's runs; absent while paused or unscheduled.",
                    &base,
                    i,
                );
            }
        }
        let mut mine: Vec<(&BackupSession, &BackupSessionStatus, f64)> = sessions
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(&ns) && invoker_name(s) == Some(&name))
            .filter_map(|s| {
                let status = s.status.as_ref()?;
                success(status.phase.as_deref())?;
                Some((s, status, finished_at(status)?))
            })
            .collect();
        mine.sort_by(|a, b| a.2.total_cmp(&b.2));
        if let Some(last_ok) = mine
            .iter()
            .rev()
            .find(|(_, st, _)| st.phase.as_deref() == Some(SUCCEEDED))
        {
            f.add(
                "stash_backup_last_success_time_seconds",
                "When the last successful backup session finished (Unix time).",
                &base,
                last_ok.2,
            );
        }
        let Some((_, last, _)) = mine.last() else {
            continue;
        };
        f.add(
            "stash_backup_session_success",
            "1 when the last finished backup session succeeded, 0 when it failed.",
            &base,
            success(last.phase.as_deref()).unwrap_or_default(),
        );
        if let Some(d) = last.session_duration.as_deref().and_then(seconds) {
            f.add(
                "stash_backup_session_duration_seconds",
                "How long the last finished backup session took.",
                &base,
                d,
            );
        }
        f.add(
            "stash_backup_target_count_total",
            "Targets of the last finished backup session.",
            &base,
            last.targets.len() as f64,
        );
        for target in &last.targets {
            let mut labels = base.clone();
            let r = target.reference.clone().unwrap_or_default();
            labels.push(("target_kind", r.kind.clone()));
            labels.push(("target_name", r.name.clone()));
            if let Some(v) = success(target.phase.as_deref()) {
                f.add(
                    "stash_backup_target_success",
                    "1 when the target's backup in the last finished session succeeded.",
                    &labels,
                    v,
                );
            }
            f.add(
                "stash_backup_target_host_count_total",
                "Hosts of the target in the last finished session.",
                &labels,
                target.total_hosts.unwrap_or(target.stats.len() as i32) as f64,
            );
            let target_ok = mine.iter().rev().find(|(_, st, _)| {
                st.targets.iter().any(|t| {
                    t.reference
                        .as_ref()
                        .is_some_and(|x| x.kind == r.kind && x.name == r.name)
                        && t.phase.as_deref() == Some(SUCCEEDED)
                })
            });
            if let Some((_, _, at)) = target_ok {
                f.add(
                    "stash_backup_target_last_success_time_seconds",
                    "When the target's last successful backup finished (Unix time).",
                    &labels,
                    *at,
                );
            }
            for host in &target.stats {
                let mut labels = labels.clone();
                labels.push(("host", host.hostname.clone()));
                add_host(&mut f, &labels, host);
            }
        }
    }
    f.write(out);
}

#[cfg(test)]
mod tests;

/// The families of one host's backup result, with `labels` on each sample.
fn add_host(f: &mut Families, labels: &Labels, host: &HostBackupStats) {
    if let Some(v) = success(host.phase.as_deref()) {
        f.add(
            "stash_backup_host_backup_success",
            "1 when the host's backup in the last finished session succeeded.",
            labels,
            v,
        );
    }
    if let Some(d) = host.duration.as_deref().and_then(seconds) {
        f.add(
            "stash_backup_host_backup_duration_seconds",
            "How long the host's backup took.",
            labels,
            d,
        );
    }
    let sum = |g: &dyn Fn(&crate::crd::backup_session::SnapshotStats) -> Option<f64>| {
        let values: Vec<f64> = host.snapshots.iter().filter_map(g).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>())
    };
    let files = |g: fn(&crate::crd::backup_session::FileStats) -> Option<i64>| {
        move |s: &crate::crd::backup_session::SnapshotStats| {
            s.file_stats.as_ref().and_then(g).map(|n| n as f64)
        }
    };
    let host_families: [(&'static str, &'static str, Option<f64>); 7] = [
        (
            "stash_backup_host_data_size_bytes",
            "Size of the host's backed-up data.",
            sum(&|s| s.total_size.as_deref().and_then(bytes)),
        ),
        (
            "stash_backup_host_data_uploaded_bytes",
            "Bytes the host's backup uploaded to the repository.",
            sum(&|s| s.uploaded.as_deref().and_then(bytes)),
        ),
        (
            "stash_backup_host_data_processing_time_seconds",
            "Time the host's backup spent processing its data.",
            sum(&|s| s.processing_time.as_deref().and_then(seconds)),
        ),
        (
            "stash_backup_host_files_total",
            "Files in the host's backup.",
            sum(&files(|x| x.total_files)),
        ),
        (
            "stash_backup_host_files_new",
            "Files new since the host's previous backup.",
            sum(&files(|x| x.new_files)),
        ),
        (
            "stash_backup_host_files_modified",
            "Files modified since the host's previous backup.",
            sum(&files(|x| x.modified_files)),
        ),
        (
            "stash_backup_host_files_unmodified",
            "Files unchanged since the host's previous backup.",
            sum(&files(|x| x.unmodified_files)),
        ),
    ];
    for (name, help, value) in host_families {
        if let Some(v) = value {
            f.add(name, help, labels, v);
        }
    }
}

/// The text exposition of one host's backup result alone, for a Pushgateway push
/// ([`crate::push`]): the same families and help texts as the operator's `/metrics`.
pub fn host_text(labels: &Labels, host: &HostBackupStats) -> String {
    let mut f = Families::default();
    add_host(&mut f, labels, host);
    let mut out = String::new();
    f.write(&mut out);
    out
}
