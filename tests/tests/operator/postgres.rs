//! The seed's database flow against a real PostgreSQL: its AppBinding, pgBackup
//! configuration and pgRecovery RestoreSession. A database with two tables and a few
//! MB of rows is backed up as a stream of `pg_dump` into a one-file snapshot, dropped,
//! restored through `psql`, and its rows compared; a wrong password fails the session
//! with PostgreSQL's own reason.

use std::time::Duration;

use stash_operator::crd::restore_session::RestoreSession;
use stash_tests::{
    kube::TestNs,
    postgres::{PgServer, PASSWORD},
};

use super::support::{back_up, finish_message, finished, ready, restic, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(180);
const DB: &str = "my-postgres";
const CHECKSUM: &str = "SELECT count(*) || ':' || md5(string_agg(i.id || i.name || i.payload || coalesce(o.qty, 0), ',' ORDER BY i.id)) FROM items i LEFT JOIN orders o ON o.item = i.id";

/// The Service, its Secret and the seed's AppBinding, at the test server's port.
fn database(ns: &TestNs, server: &PgServer, password: &str) {
    ns.apply(&format!(
        "apiVersion: v1
kind: Service
metadata:
  name: quick-postgres
spec:
  ports: [{{port: {port}}}]
---
apiVersion: v1
kind: Secret
metadata:
  name: quick-postgres-auth
stringData:
  POSTGRES_USER: postgres
  POSTGRES_PASSWORD: {password}
",
        port = server.port
    ));
    ns.apply(
        &seed("07-appbinding-quick-postgres.yaml", &ns.name)
            .replace("port: 5432", &format!("port: {}", server.port)),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_database_backup_and_recovery_round_trip_rows() {
    let Setup { ns, repo_dir, .. } = setup("op-pg").await;
    let server = PgServer::start();
    server.psql("postgres", &format!("CREATE DATABASE \"{DB}\""));
    server.psql(
        DB,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, payload text);
         INSERT INTO items SELECT g, 'item ' || g, repeat(md5(g::text), 20) FROM generate_series(1, 8000) g;
         CREATE TABLE orders (id serial PRIMARY KEY, item int REFERENCES items(id), qty int);
         INSERT INTO orders (item, qty) SELECT g, g % 7 FROM generate_series(1, 8000, 3) g;",
    );
    let before = server.value(DB, CHECKSUM);
    assert!(before.starts_with("8000:"), "{before}");
    database(&ns, &server, PASSWORD);
    ns.apply(&seed(
        "08-backupconfiguration-database-backup-demo.yaml",
        &ns.name,
    ));
    ready(&ns, "database-backup-demo").await;
    let bs = back_up(&ns, "db-1", "database-backup-demo").await;
    let status = bs.status.clone().expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    let host = &status.targets[0].stats[0];
    assert_eq!(host.snapshots[0].path, "/dumpfile.sql", "{host:?}");

    let check = restic(&repo_dir, &["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dump = restic(&repo_dir, &["dump", "latest", "/dumpfile.sql"]);
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let sql = String::from_utf8_lossy(&dump.stdout);
    assert!(
        sql.contains("CREATE TABLE public.items"),
        "{}",
        &sql[..sql.len().min(2000)]
    );
    assert!(
        sql.len() > 4_000_000,
        "a few MB of rows: {} bytes",
        sql.len()
    );

    server.psql("postgres", &format!("DROP DATABASE \"{DB}\""));
    ns.apply(&seed(
        "09-restoresession-database-recovery-demo.yaml",
        &ns.name,
    ));
    let rs = ns
        .wait_for::<RestoreSession>("database-recovery-demo", "a finished restore", WAIT, |r| {
            finished(r.status.as_ref().and_then(|s| s.phase.as_deref()))
        })
        .await;
    let status = rs.status.expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    assert_eq!(server.value(DB, CHECKSUM), before, "the rows came back");

    // A wrong password: PostgreSQL's refusal is the session's reason, and no snapshot
    // is written of the failed dump.
    database(&ns, &server, "not-the-password");
    let bs = back_up(&ns, "db-2", "database-backup-demo").await;
    let status = bs.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
    let why = finish_message(&status);
    assert!(why.contains("password authentication failed"), "{why}");
    let snapshots = restic(&repo_dir, &["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&snapshots.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}
