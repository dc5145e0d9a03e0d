#!/usr/bin/env bash
# PostgreSQL backup throughput and peak memory, in one run on one database:
#   ceiling  pg_dump alone, writing to /dev/null;
#   stash    pg_dump's output streamed into `stash backup --stdin` (what the pgBackup
#            Task's Job does: the dump's stdout read by the engine's stdin backup);
#   restic   the same stream into `restic backup --stdin`.
# Each tool writes a fresh repository (version 2, compressed), so every run is a first
# backup. The database is made by Debian's PostgreSQL in a temporary directory and is
# removed at the end.
#
# Usage: benches/pg.sh [--size-mb N (1024)] [--out FILE (target/pg-bench.md)]
# Environment: STASH_BIN (default: build target/release/stash).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SIZE_MB=1024
OUT="$ROOT/target/pg-bench.md"
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mb) SIZE_MB="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "pg.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -n "${STASH_BIN:-}" ]; then
    STASH="$STASH_BIN"
else
    echo "pg.sh: building stash (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet -p stash-operator --bin stash)
    STASH="$ROOT/target/release/stash"
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
[ -x "$PG_BIN/postgres" ] || { echo "pg.sh: no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }
command -v restic >/dev/null || { echo "pg.sh: restic is not installed" >&2; exit 1; }

WORK="$(mktemp -d)"
chmod 755 "$WORK"
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() {
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/data" "$WORK/run"
[ "$(id -u)" -ne 0 ] || chown postgres "$WORK/data" "$WORK/run"
as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/run/server.log" -w \
    -o "-p $PORT -k $WORK/run -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" \
    start >/dev/null
export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres
psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

# Rows of ~250 bytes: a key, a name, hex payload (md5, as compressible as real text
# columns), a number and a time; added a million at a time until the database is big.
psql_q -d postgres -c "CREATE DATABASE bench"
psql_q -d bench -c "CREATE TABLE items (id bigint PRIMARY KEY, name text, payload text, amount numeric(12,2), created timestamptz)"
next=1
echo "pg.sh: filling a ${SIZE_MB} MB database" >&2
while [ "$(psql_q -d bench -c "SELECT pg_database_size('bench') / 1048576")" -lt "$SIZE_MB" ]; do
    psql_q -d bench -c "INSERT INTO items SELECT g, 'item ' || g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 31)::text), (g % 100000) / 100.0, timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series($next, $next + 999999) g"
    next=$((next + 1000000))
done
DB_MB="$(psql_q -d bench -c "SELECT pg_database_size('bench') / 1048576")"

# One measured command: wall seconds, CPU seconds and peak RSS (KiB) of the command run
# under GNU time, appended to $WORK/run/<name>.
timed() {
    local name="$1"; shift
    /usr/bin/time -o "$WORK/run/$name.time" -f '%U %S %M' "$@"
}
now() { date +%s.%N; }

export RESTIC_PASSWORD="pg-bench-password"
"$STASH" -r "$WORK/stash-repo" init --repository-version 2 >/dev/null
restic -r "$WORK/restic-repo" init --repository-version 2 >/dev/null 2>&1

sync
echo "pg.sh: pg_dump > /dev/null" >&2
t0=$(now); timed ceiling pg_dump -d bench >/dev/null; t1=$(now)
ceiling_wall=$(echo "$t1 - $t0" | bc)
DUMP_BYTES=$(pg_dump -d bench | wc -c)

echo "pg.sh: pg_dump | stash backup --stdin" >&2
t0=$(now)
pg_dump -d bench | timed stash "$STASH" -r "$WORK/stash-repo" backup --stdin --stdin-filename dumpfile.sql >/dev/null
t1=$(now)
stash_wall=$(echo "$t1 - $t0" | bc)

echo "pg.sh: pg_dump | restic backup --stdin" >&2
t0=$(now)
pg_dump -d bench | timed restic restic -r "$WORK/restic-repo" backup --stdin --stdin-filename dumpfile.sql >/dev/null
t1=$(now)
restic_wall=$(echo "$t1 - $t0" | bc)

restic -r "$WORK/stash-repo" check --read-data >/dev/null 2>&1 \
    || { echo "pg.sh: restic check of stash's repository failed" >&2; exit 1; }
stash_repo_mb=$(du -sm "$WORK/stash-repo" | cut -f1)
restic_repo_mb=$(du -sm "$WORK/restic-repo" | cut -f1)

row() {
    local name="$1" wall="$2" user sys rss
    read -r user sys rss <"$WORK/run/$name.time"
    awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v b="$DUMP_BYTES" -v c="$ceiling_wall" \
        'BEGIN { printf "| %s | %.2f s | %.0f MB/s | %.2fx | %.2f s | %.0f MiB |\n", n, w, b / w / 1e6, w / c, u + s, r / 1024 }'
}
mkdir -p "$(dirname "$OUT")"
{
    echo "# PostgreSQL backup: pg_dump into the repository"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(restic version | awk '{print $1, $2}')."
    echo "Database: ${DB_MB} MiB on disk; its dump: $((DUMP_BYTES / 1048576)) MiB."
    echo
    echo "| run | wall | dump throughput | wall / ceiling | CPU (the measured process) | peak RSS (the measured process) |"
    echo "|---|---|---|---|---|---|"
    row ceiling "$ceiling_wall"
    row stash "$stash_wall"
    row restic "$restic_wall"
    echo
    echo "The ceiling is pg_dump alone into /dev/null. For stash and restic, wall is the whole"
    echo "pipeline (pg_dump and the backup); CPU and peak RSS are the backup process's only."
    echo "Repository after the backup: stash ${stash_repo_mb} MiB, restic ${restic_repo_mb} MiB;"
    echo "restic check --read-data passes on stash's."
} | tee "$OUT"
echo "pg.sh: wrote $OUT" >&2
