//! The operator's Prometheus metrics, kept in atomics and written in the text format
//! by hand: a handful of counters does not need a metrics library.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
};

/// Counters of what the controllers did.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciliations: Mutex<BTreeMap<&'static str, u64>>,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    sessions_finished: Mutex<BTreeMap<String, u64>>,
    sessions_created: AtomicU64,
    sidecar_changes: AtomicU64,
    leader: AtomicBool,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    *m.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(k)
        .or_default() += 1;
}

impl Metrics {
    pub fn reconciled(&self, controller: &'static str) {
        bump(&self.reconciliations, controller);
    }

    pub fn failed(&self, controller: &'static str) {
        bump(&self.failures, controller);
    }

    pub fn session_created(&self) {
        self.sessions_created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_finished(&self, phase: &str) {
        bump(&self.sessions_finished, phase.to_string());
    }

    pub fn sidecar_changed(&self) {
        self.sidecar_changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let labelled = |out: &mut String, name: &str, label: &str, m: &BTreeMap<String, u64>| {
            for (k, v) in m {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        let owned = |m: &Mutex<BTreeMap<&'static str, u64>>| -> BTreeMap<String, u64> {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        };
        family(
            &mut out,
            "stash_operator_reconciliations_total",
            "counter",
            "Reconciliations by controller.",
        );
        labelled(
            &mut out,
            "stash_operator_reconciliations_total",
            "controller",
            &owned(&self.reconciliations),
        );
        family(
            &mut out,
            "stash_operator_reconcile_errors_total",
            "counter",
            "Failed reconciliations by controller.",
        );
        labelled(
            &mut out,
            "stash_operator_reconcile_errors_total",
            "controller",
            &owned(&self.failures),
        );
        family(
            &mut out,
            "stash_backup_sessions_finished_total",
            "counter",
            "Backup sessions ended, by phase.",
        );
        let finished = self
            .sessions_finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        labelled(
            &mut out,
            "stash_backup_sessions_finished_total",
            "phase",
            &finished,
        );
        family(
            &mut out,
            "stash_backup_sessions_created_total",
            "counter",
            "Backup sessions created by schedules.",
        );
        let _ = writeln!(
            out,
            "stash_backup_sessions_created_total {}",
            self.sessions_created.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "stash_operator_sidecar_changes_total",
            "counter",
            "Pod templates changed (each one rolls a workload).",
        );
        let _ = writeln!(
            out,
            "stash_operator_sidecar_changes_total {}",
            self.sidecar_changes.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "stash_operator_leader",
            "gauge",
            "1 while this replica holds the leader lease.",
        );
        let _ = writeln!(out, "stash_operator_leader {}", u8::from(self.is_leader()));
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
