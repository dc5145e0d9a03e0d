//! Lock documents (`locks/<id>`, spec §9) and restic's pure locking rules.
//!
//! Acquiring, refreshing and deleting locks needs a backend and lives elsewhere; this
//! module only encodes the document and decides staleness and conflicts, so both tools
//! agree on who may touch the repository.
//!
//! restic calls a lock stale when it is older than 30 minutes or when it was written on
//! this host by a process that no longer exists. The second half is not proof inside
//! Kubernetes: the containers of one pod share a host name but not a PID namespace, so
//! a live holder in the next container looks dead. Our lock files therefore carry one
//! field restic does not write and ignores when reading, `pid_namespace` (boot id and
//! PID-namespace inode of the holder); a lock is judged by its PID only when that field
//! equals ours ([`Lock::is_stale`]). `unlock`, an explicit request, keeps restic's rule
//! for locks without the field ([`Lock::is_stale_for_unlock`]).
//!
//! A container restarted by the kubelet gets a new PID namespace, so the lock its killed
//! predecessor left is no longer provably dead by the rule above. Where a process knows
//! it runs in a slot that holds at most one process at a time (a pod's container: the
//! kubelet never runs two instances of it at once), it writes that slot as `container`;
//! a lock of our very slot written by another process is dead ([`Lock::holder_is_dead`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    error::{FormatError, Result},
    gotime::GoTime,
};

/// A lock older than this is stale for everyone (restic's `StaleLockTimeout`).
pub const STALE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How often a holder writes a fresh lock file (restic's `refreshInterval`).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Without a successful refresh for this long, restic stops trusting its own lock:
/// [`STALE_TIMEOUT`] minus 1.5 × [`REFRESH_INTERVAL`] = 22.5 minutes.
pub const REFRESH_GIVE_UP: Duration = Duration::from_secs(30 * 60 - 450);

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// One lock file's content. Key order and omit rules are restic's (`uid`/`gid` absent
/// when 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Creation (or refresh) time.
    pub time: GoTime,
    /// Exclusive locks exclude every other lock; shared ones only exclusive locks.
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
    /// Uid of the holder.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Gid of the holder.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    /// The holder's boot id and PID namespace (see the module doc); absent in restic's
    /// locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// The slot the holder ran in, of which at most one process runs at a time (a
    /// Kubernetes pod UID and container name); absent in restic's locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Where the process judging a lock runs: what decides whether a lock's PID can be
/// looked up here.
#[derive(Clone, Copy, Debug)]
pub struct Here<'a> {
    /// This host's name.
    pub hostname: &'a str,
    /// This process's boot id and PID namespace, if known.
    pub pid_namespace: Option<&'a str>,
    /// This process's id.
    pub pid: u32,
    /// This process's one-at-a-time slot, if it has one (see the module doc).
    pub container: Option<&'a str>,
}

impl Lock {
    /// A lock taken now.
    pub fn new(
        exclusive: bool,
        hostname: &str,
        username: &str,
        pid: u32,
        uid: u32,
        gid: u32,
    ) -> Self {
        Lock {
            time: GoTime::now(),
            exclusive,
            hostname: hostname.to_owned(),
            username: username.to_owned(),
            pid,
            uid,
            gid,
            pid_namespace: None,
            container: None,
        }
    }

    /// Compact JSON.
    ///
    /// # Errors
    /// Only if serialization itself fails, which the field types rule out.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| FormatError::json("lock", e))
    }

    /// Parses a lock file. restic treats an unreadable lock as blocking ("invalid lock
    /// file") but ignores a zero-byte one; that policy belongs to the caller, which should
    /// check for empty input before calling this.
    ///
    /// # Errors
    /// [`FormatError::Json`] for anything that is not a lock document.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| FormatError::json("lock", e))
    }

    /// How long ago the lock was written, as seen at `now` (zero if in the future).
    pub fn age(&self, now: &GoTime) -> Duration {
        (now.datetime() - self.time.datetime())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Stale beyond doubt: older than [`STALE_TIMEOUT`], or its holder is provably dead
    /// ([`Lock::holder_is_dead`]). Such a lock does not block anyone. A lock dated in the
    /// future is not stale by age.
    pub fn is_stale(&self, now: &GoTime, here: &Here<'_>, pid_alive: impl Fn(u32) -> bool) -> bool {
        self.age(now) > STALE_TIMEOUT || self.holder_is_dead(here, pid_alive)
    }

    /// Proof that the holder no longer runs: written in this very PID namespace (same
    /// host, boot and namespace) by a process that no longer exists, or written in our
    /// own one-at-a-time slot by another process. Such a lock may be removed at once.
    pub fn holder_is_dead(&self, here: &Here<'_>, pid_alive: impl Fn(u32) -> bool) -> bool {
        let same_namespace = self.hostname == here.hostname
            && self.pid_namespace.is_some()
            && self.pid_namespace.as_deref() == here.pid_namespace;
        if same_namespace && !pid_alive(self.pid) {
            return true;
        }
        let same_slot = self.container.is_some() && self.container.as_deref() == here.container;
        same_slot && !(same_namespace && self.pid == here.pid)
    }

    /// Whether the holder looks dead by restic's rule (same host name, PID not running
    /// here) without that being proof: worth a hint that `unlock` can remove it.
    pub fn looks_dead(&self, here: &Here<'_>, pid_alive: impl Fn(u32) -> bool) -> bool {
        self.hostname == here.hostname && !pid_alive(self.pid)
    }

    /// What `unlock` removes: [`Lock::is_stale`], and for locks without a
    /// `pid_namespace` (restic's) restic's own rule, same host name and PID not running.
    pub fn is_stale_for_unlock(
        &self,
        now: &GoTime,
        here: &Here<'_>,
        pid_alive: impl Fn(u32) -> bool,
    ) -> bool {
        if self.pid_namespace.is_none() && self.looks_dead(here, &pid_alive) {
            return true;
        }
        self.is_stale(now, here, pid_alive)
    }

    /// Whether this existing lock prevents taking a lock of the given kind: exclusive
    /// requests conflict with every lock, shared requests only with exclusive locks.
    pub fn conflicts(&self, want_exclusive: bool) -> bool {
        self.exclusive || want_exclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn at(s: &str) -> GoTime {
        GoTime::parse(s).unwrap()
    }

    #[test]
    fn restic_lock_decodes() {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lock-0d06de21.json");
        let l = Lock::decode(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(l.time.to_string(), "2026-11-24T19:00:21.204990897-03:30");
        assert!(!l.exclusive);
        assert_eq!(
            (l.hostname.as_str(), l.username.as_str(), l.pid),
            ("vm", "root", 5496)
        );
        assert_eq!((l.uid, l.gid), (0, 0));
        assert_eq!(
            String::from_utf8(l.encode().unwrap()).unwrap(),
            r#"{"time":"2026-11-24T19:00:21.204990897-03:30","exclusive":false,"hostname":"vm","username":"root","pid":5496}"#
        );
    }

    #[test]
    fn uid_gid_written_when_nonzero() {
        let mut l = Lock::new(true, "h", "u", 7, 1000, 100);
        l.time = at("2024-01-01T00:00:00Z");
        let j = String::from_utf8(l.encode().unwrap()).unwrap();
        assert_eq!(
            j,
            r#"{"time":"2024-01-01T00:00:00Z","exclusive":true,"hostname":"h","username":"u","pid":7,"uid":1000,"gid":100}"#
        );
        assert_eq!(Lock::decode(j.as_bytes()).unwrap(), l);
        for bad in [&b""[..], b"{}", b"{\"time\":\"x\"}", b"[1]", b"{\"time\":\"2024-01-01T00:00:00Z\",\"exclusive\":1,\"hostname\":\"h\",\"username\":\"u\",\"pid\":1}"] {
            assert!(Lock::decode(bad).is_err());
        }
    }

    #[test]
    fn staleness_rules() {
        let mut l = Lock::new(false, "here", "u", 42, 0, 0);
        l.time = at("2024-01-01T00:00:00Z");
        let here = Here {
            hostname: "here",
            pid_namespace: Some("boot/ns1"),
            pid: 7,
            container: None,
        };
        let there = Here {
            hostname: "there",
            ..here
        };
        let alive = |_| true;
        let dead = |_| false;
        // Exactly 30 minutes is not yet stale (restic uses "older than").
        assert!(!l.is_stale(&at("2024-01-01T00:30:00Z"), &here, alive));
        assert!(l.is_stale(&at("2024-01-01T00:30:00.000000001Z"), &here, alive));
        assert!(!l.is_stale(&at("2024-01-01T01:30:00+01:00"), &there, alive));
        assert!(l.is_stale(&at("2024-01-01T01:31:00+01:00"), &there, alive));
        // Future lock: not stale by age.
        assert!(!l.is_stale(&at("2023-12-31T00:00:00Z"), &here, alive));
        assert_eq!(l.age(&at("2023-12-31T00:00:00Z")), Duration::ZERO);
        assert_eq!(l.age(&at("2024-01-01T00:01:00Z")), Duration::from_secs(60));

        let soon = at("2024-01-01T00:00:01Z");
        // A restic lock (no namespace) of this host with a dead PID: not proof, so
        // not stale; it looks dead, and unlock removes it as restic's would.
        assert!(!l.is_stale(&soon, &here, dead));
        assert!(l.looks_dead(&here, dead));
        assert!(l.is_stale_for_unlock(&soon, &here, dead));
        assert!(!l.is_stale_for_unlock(&soon, &here, alive));
        assert!(!l.is_stale_for_unlock(&soon, &there, dead));
        // Our lock from this PID namespace: the PID decides.
        l.pid_namespace = Some("boot/ns1".into());
        assert!(l.is_stale(&soon, &here, dead));
        assert!(l.is_stale(&soon, &here, |pid| pid != 42));
        assert!(!l.is_stale(&soon, &here, alive));
        assert!(!l.is_stale(&soon, &there, dead));
        // Another container of the pod: same host name, another namespace. Never
        // stale by PID, not even for unlock.
        l.pid_namespace = Some("boot/ns2".into());
        assert!(!l.is_stale(&soon, &here, dead));
        assert!(!l.is_stale_for_unlock(&soon, &here, dead));
        assert!(l.looks_dead(&here, dead));
        // We do not know our own namespace: nothing is proof.
        l.pid_namespace = Some("boot/ns1".into());
        let unknown = Here {
            pid_namespace: None,
            ..here
        };
        assert!(!l.is_stale(&soon, &unknown, dead));
        assert!(l.is_stale(&at("2024-01-01T01:00:00Z"), &unknown, alive));
    }

    #[test]
    fn a_lock_of_our_own_container_by_another_process_is_dead() {
        let soon = at("2024-01-01T00:00:01Z");
        let mut l = Lock::new(false, "web-0", "root", 1, 0, 0);
        l.time = at("2024-01-01T00:00:00Z");
        l.pid_namespace = Some("boot/old".into());
        l.container = Some("pod-uid/stash".into());
        let here = Here {
            hostname: "web-0",
            pid_namespace: Some("boot/new"),
            pid: 1,
            container: Some("pod-uid/stash"),
        };
        let alive = |_| true;
        // The restarted container: same slot, new PID namespace, even the same PID.
        assert!(l.holder_is_dead(&here, alive));
        assert!(l.is_stale(&soon, &here, alive));
        // Another container of the pod, or one without a slot: no proof.
        for other in [Some("pod-uid/stash-init"), None] {
            let there = Here {
                container: other,
                ..here
            };
            assert!(!l.holder_is_dead(&there, alive), "{other:?}");
        }
        // Our own process's other lock is alive.
        l.pid_namespace = Some("boot/new".into());
        assert!(!l.holder_is_dead(&here, alive));
        // Another process of our slot in our namespace: an earlier run.
        l.pid = 2;
        assert!(l.holder_is_dead(&here, alive));
        // restic's locks have no slot.
        l.container = None;
        assert!(!l.holder_is_dead(&here, alive));
    }

    #[test]
    fn pid_namespace_round_trips_and_is_optional() {
        let mut l = Lock::new(true, "h", "u", 7, 0, 0);
        l.time = at("2024-01-01T00:00:00Z");
        l.pid_namespace = Some("b/4026531836".into());
        let j = String::from_utf8(l.encode().unwrap()).unwrap();
        assert!(
            j.ends_with(r#""pid":7,"pid_namespace":"b/4026531836"}"#),
            "{j}"
        );
        assert_eq!(Lock::decode(j.as_bytes()).unwrap(), l);
        l.container = Some("uid/stash".into());
        let j = String::from_utf8(l.encode().unwrap()).unwrap();
        assert!(j.ends_with(r#""container":"uid/stash"}"#), "{j}");
        assert_eq!(Lock::decode(j.as_bytes()).unwrap(), l);
    }

    #[test]
    fn conflict_matrix() {
        let shared = Lock::new(false, "h", "u", 1, 0, 0);
        let excl = Lock::new(true, "h", "u", 1, 0, 0);
        assert!(!shared.conflicts(false));
        assert!(shared.conflicts(true));
        assert!(excl.conflicts(false));
        assert!(excl.conflicts(true));
        assert_eq!(REFRESH_GIVE_UP, Duration::from_secs(1350));
    }
}
