//! Cross-component integration tests of the `stash` binary, with Debian's `restic`
//! (0.14) as the oracle. restic must be installed: tests that need it fail, they do
//! not skip.
//!
//! - `util`: locating/building `target/<profile>/stash`, running stash and restic
//!   with a clean environment, the rich source tree and the tree comparison.
//! - `restic_compat`: what stash writes restic checks and restores and vice versa,
//!   FastCDC repositories, `--stdin`, `--exclude`, path forms, committed fixtures.
//! - `roundtrip`: stash alone: backup/restore, partial restores, dump, ls, cat, keys.
//! - `damage`: wrong passwords, missing repositories, damaged repository files.
//! - `locks`: lock cleanup, Ctrl-C, live and stale locks of restic and stash.
//! - `maintenance`: forget parity with restic, forget --prune, SIGKILL safety, concurrency.
//! - `image`: the daemonless container image, unpacked by umoci, runs as its user.
//! - `monitoring`: the alert rules under promtool, the dashboard's queries.
//! - `verbs`: restic's further verbs (`list`, `tag`) against restic's own.

mod backup_flags;
mod cache;
mod copy;
mod damage;
mod image;
mod locks;
mod maintenance;
mod monitoring;
mod repair;
mod restic_compat;
mod restore_flags;
mod roundtrip;
mod util;
mod verbs;
