//! The operator's Prometheus metrics, kept in atomics and written in the text format
//! by hand: a handful of counters does not need a metrics library. The leader adds the
//! backup metrics ([`crate::backup_metrics`]) from its controllers' caches.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
};

use kube::runtime::reflector::Store;

use crate::crd::{backup_configuration::BackupConfiguration, backup_session::BackupSession};

/// Counters of what the controllers did.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciliations: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<BTreeMap<String, u64>>,
    sessions_finished: Mutex<BTreeMap<String, u64>>,
    restores_finished: Mutex<BTreeMap<String, u64>>,
    sessions_created: AtomicU64,
    template_changes: AtomicU64,
    leader: AtomicBool,
    /// The leader's caches of what the backup metrics are computed from: one pair per
    /// watched scope (all namespaces, or each watched namespace).
    backups: Mutex<Vec<(Store<BackupConfiguration>, Store<BackupSession>)>>,
}

fn bump(m: &Mutex<BTreeMap<String, u64>>, k: &str) {
    *m.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(k.to_string())
        .or_default() += 1;
}

/// One metric family in the text format: its header, then one line per label value
/// (or one unlabelled line).
fn family(out: &mut String, name: &str, kind: &str, help: &str, values: Values<'_>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    match values {
        Values::One(v) => {
            let _ = writeln!(out, "{name} {v}");
        }
        Values::By(label, m) => {
            let m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, v) in m.iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        }
    }
}

enum Values<'a> {
    One(u64),
    By(&'static str, &'a Mutex<BTreeMap<String, u64>>),
}

impl Metrics {
    pub fn reconciled(&self, controller: &str) {
        bump(&self.reconciliations, controller);
    }

    pub fn failed(&self, controller: &str) {
        bump(&self.failures, controller);
    }

    pub fn session_created(&self) {
        self.sessions_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_finished(&self, phase: &str) {
        bump(&self.sessions_finished, phase);
    }

    pub fn restore_finished(&self, phase: &str) {
        bump(&self.restores_finished, phase);
    }

    /// A workload's pod template was changed (the sidecar or init container went in
    /// or out): each one rolls the workload.
    pub fn template_changed(&self) {
        self.template_changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Serve the backup metrics from these caches (the leader's controllers').
    pub fn watch_backups(
        &self,
        configurations: Store<BackupConfiguration>,
        sessions: Store<BackupSession>,
    ) {
        self.backups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((configurations, sessions));
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let o = &mut out;
        family(
            o,
            "stash_operator_reconciliations_total",
            "counter",
            "Reconciliations by controller.",
            Values::By("controller", &self.reconciliations),
        );
        family(
            o,
            "stash_operator_reconcile_errors_total",
            "counter",
            "Failed reconciliations by controller.",
            Values::By("controller", &self.failures),
        );
        family(
            o,
            "stash_backup_sessions_finished_total",
            "counter",
            "Backup sessions ended, by phase.",
            Values::By("phase", &self.sessions_finished),
        );
        family(
            o,
            "stash_restore_sessions_finished_total",
            "counter",
            "Restore sessions ended, by phase.",
            Values::By("phase", &self.restores_finished),
        );
        family(
            o,
            "stash_backup_sessions_created_total",
            "counter",
            "Backup sessions created by schedules.",
            Values::One(self.sessions_created.load(Ordering::Relaxed)),
        );
        family(
            o,
            "stash_operator_pod_template_changes_total",
            "counter",
            "Pod templates changed (each one rolls a workload).",
            Values::One(self.template_changes.load(Ordering::Relaxed)),
        );
        family(
            o,
            "stash_operator_leader",
            "gauge",
            "1 while this replica holds the leader lease.",
            Values::One(u64::from(self.is_leader())),
        );
        if self.is_leader() {
            let (mut configurations, mut sessions) = (Vec::new(), Vec::new());
            for (c, s) in self
                .backups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
            {
                configurations.extend(c.state().iter().map(|c| (**c).clone()));
                sessions.extend(s.state().iter().map(|s| (**s).clone()));
            }
            crate::backup_metrics::render(o, &configurations, &sessions, chrono::Utc::now());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.reconciled("backupsession");
        m.reconciled("backupsession");
        m.session_finished("Succeeded");
        m.set_leader(true);
        let text = m.render();
        assert!(
            text.contains("stash_operator_reconciliations_total{controller=\"backupsession\"} 2\n")
        );
        assert!(text.contains("stash_backup_sessions_finished_total{phase=\"Succeeded\"} 1\n"));
        assert!(text.contains("# TYPE stash_operator_leader gauge\nstash_operator_leader 1\n"));
    }
}
