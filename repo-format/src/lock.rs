//! Lock documents (`locks/<id>`, spec §9) and restic's pure locking rules.
//!
//! Acquiring, refreshing and deleting locks needs a backend and lives elsewhere; this
//! module only encodes the document and decides staleness and conflicts the way restic
//! does, so both tools agree on who may touch the repository.

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

    /// restic's `Lock.Stale`: older than [`STALE_TIMEOUT`], or written on `this_host` by a
    /// process that no longer exists. A lock from another host is never stale by PID;
    /// a lock dated in the future is not stale by age.
    pub fn is_stale(&self, now: &GoTime, this_host: &str, pid_alive: impl Fn(u32) -> bool) -> bool {
        if self.age(now) > STALE_TIMEOUT {
            return true;
        }
        self.hostname == this_host && !pid_alive(self.pid)
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
        let alive = |_| true;
        let dead = |_| false;
        // Exactly 30 minutes is not yet stale (restic uses "older than").
        assert!(!l.is_stale(&at("2024-01-01T00:30:00Z"), "here", alive));
        assert!(l.is_stale(&at("2024-01-01T00:30:00.000000001Z"), "here", alive));
        assert!(!l.is_stale(&at("2024-01-01T01:30:00+01:00"), "elsewhere", alive));
        assert!(l.is_stale(&at("2024-01-01T01:31:00+01:00"), "elsewhere", alive));
        // Same host, dead PID: stale at once; other host: PID not consulted.
        assert!(l.is_stale(&at("2024-01-01T00:00:01Z"), "here", dead));
        assert!(!l.is_stale(&at("2024-01-01T00:00:01Z"), "there", dead));
        assert!(l.is_stale(&at("2024-01-01T00:00:01Z"), "here", |pid| pid != 42));
        // Future lock: not stale by age.
        assert!(!l.is_stale(&at("2023-12-31T00:00:00Z"), "here", alive));
        assert_eq!(l.age(&at("2023-12-31T00:00:00Z")), Duration::ZERO);
        assert_eq!(l.age(&at("2024-01-01T00:01:00Z")), Duration::from_secs(60));
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
