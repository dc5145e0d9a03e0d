//! PostgreSQL through the engine: `pg_dump` (one database) or `pg_dumpall` streamed
//! into the repository as a one-file stdin snapshot (`/dumpfile.sql`, released Stash's
//! name), and the file streamed back into `psql`. Nothing touches the disk between.
//!
//! The client tools come from the image (Debian's `postgresql-client`, the newest
//! major version, which dumps every older server; a dump restores into a server of
//! the same or a newer major version). A dump that exits non-zero fails the read of
//! its stream, so it never becomes a snapshot.

use std::{
    io::Read,
    process::{Child, ChildStdout, Command, Stdio},
    sync::Arc,
    thread::JoinHandle,
    time::Instant,
};

use stash_agent::{
    backup::{backup_stdin, BackupOptions, Counters},
    repository::Repository as Engine,
    restore::dump::{find_node, write_file},
};
use stash_repo_format::Id;

use crate::{runner::RunnerError, session::DirectoryResult};

/// The snapshot's one file.
pub const DUMP_FILE: &str = "dumpfile.sql";

/// Where and what to dump or restore; the user and password come from the
/// environment (`PGUSER`, `PGPASSWORD`), set from the AppBinding's Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub host: String,
    pub port: String,
    /// One database, or empty for every database (`pg_dumpall`).
    pub name: String,
}

impl Database {
    /// The dump command: `pg_dump --create --clean --if-exists` of one database (its
    /// restore drops and recreates it), or `pg_dumpall --clean --if-exists`.
    pub fn dump_command(&self) -> Command {
        let mut c = Command::new(if self.name.is_empty() {
            "pg_dumpall"
        } else {
            "pg_dump"
        });
        c.args([
            "--host",
            &self.host,
            "--port",
            &self.port,
            "--clean",
            "--if-exists",
        ]);
        if !self.name.is_empty() {
            c.args(["--create", "--dbname", &self.name]);
        }
        c
    }

    /// The restore command, reading the dump on stdin. A single database's dump stops
    /// at its first error; `pg_dumpall`'s recreates roles that exist, which psql
    /// reports and passes over.
    pub fn restore_command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("psql");
        c.args([
            "--host",
            &self.host,
            "--port",
            &self.port,
            "--dbname",
            "postgres",
            "--quiet",
            "--no-psqlrc",
        ]);
        if !self.name.is_empty() {
            c.args(["--set", "ON_ERROR_STOP=1"]);
        }
        c
    }
}

/// The last meaningful line of a tool's standard error.
fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// A child's stdout whose end is an error when the child failed.
struct Checked {
    program: String,
    child: Child,
    out: ChildStdout,
    stderr: Option<JoinHandle<String>>,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(0)
        } else {
            Err(std::io::Error::other(format!(
                "{} {status}: {}",
                self.program,
                last_line(&stderr)
            )))
        }
    }
}

fn spawn_checked(mut cmd: Command) -> Result<Checked, RunnerError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunnerError::Config(format!("starting {program}: {e}")))?;
    let (Some(out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunnerError::Config(format!("{program}: no output pipes")));
    };
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Ok(Checked {
        program,
        child,
        out,
        stderr: Some(stderr),
    })
}

/// Dumps `db` into a snapshot of `host`.
///
/// # Errors
/// The dump tool cannot start or fails (its last error line), or the backup fails.
pub async fn backup(
    engine: &Engine,
    db: &Database,
    host: &str,
) -> Result<DirectoryResult, RunnerError> {
    let started = Instant::now();
    let opts = BackupOptions {
        host: Some(host.to_string()),
        ..BackupOptions::default()
    };
    let dump = spawn_checked(db.dump_command())?;
    let r = backup_stdin(
        engine,
        &opts,
        DUMP_FILE,
        Box::new(dump),
        Arc::new(Counters::default()),
    )
    .await
    .map_err(|e| RunnerError::Config(format!("backing up the dump: {e}")))?;
    let s = &r.summary;
    Ok(DirectoryResult {
        path: format!("/{DUMP_FILE}"),
        snapshot: r.snapshot_id.short(),
        total_bytes: s.total_bytes_processed,
        uploaded_bytes: s.data_added_packed,
        processing: started.elapsed(),
        total_files: 1,
        new_files: s.files_new,
        changed_files: s.files_changed,
        unmodified_files: s.files_unmodified,
    })
}

/// Streams the dump of snapshot `tree` into `psql`.
///
/// # Errors
/// The snapshot has no dump file, psql cannot start or fails (its last error line).
pub async fn restore(engine: &Engine, db: &Database, tree: Id) -> Result<u64, RunnerError> {
    let index = engine.load_index().await?;
    let node = find_node(engine, &index, tree, DUMP_FILE).await?;
    let mut child = db
        .restore_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunnerError::Config(format!("starting psql: {e}")))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(RunnerError::Config("psql: no input pipe".into()));
    };
    let written = write_file(engine, &index, &node, &mut stdin, "psql's input").await;
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| RunnerError::Config(format!("waiting for psql: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(RunnerError::Config(format!(
            "psql {}: {}",
            out.status,
            last_line(&stderr)
        )));
    }
    Ok(written?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn one_database_or_all() {
        let one = Database {
            host: "quick-postgres".into(),
            port: "5432".into(),
            name: "my-postgres".into(),
        };
        let c = one.dump_command();
        assert_eq!(c.get_program(), "pg_dump");
        assert_eq!(
            args(&c),
            [
                "--host",
                "quick-postgres",
                "--port",
                "5432",
                "--clean",
                "--if-exists",
                "--create",
                "--dbname",
                "my-postgres"
            ]
        );
        let all = Database {
            name: String::new(),
            ..one
        };
        assert_eq!(all.dump_command().get_program(), "pg_dumpall");
    }

    #[test]
    fn a_failed_dump_is_a_read_error_not_an_end() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "printf 'SELECT 1;\\n'; echo 'FATAL: password authentication failed' >&2; exit 2",
        ]);
        let mut r = spawn_checked(cmd).unwrap();
        let mut out = String::new();
        let e = r.read_to_string(&mut out).unwrap_err();
        assert_eq!(out, "SELECT 1;\n");
        assert!(
            e.to_string()
                .ends_with("FATAL: password authentication failed"),
            "{e}"
        );
        let mut ok = Command::new("sh");
        ok.args(["-c", "printf 'x'"]);
        let mut out = String::new();
        spawn_checked(ok).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "x");
    }
}
