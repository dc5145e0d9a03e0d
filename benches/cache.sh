#!/usr/bin/env bash
# The local cache against moto's S3 server: `ls latest` and an unchanged backup of a
# repository with many snapshots, by stash without and with its cache and by restic
# without and with its cache, interleaved in one run.
#
# Usage: benches/cache.sh [--snapshots N] [--rounds R] [--files F] [--out FILE]
#   --snapshots N  snapshots in the repository before timing (default 100)
#   --rounds R     timed rounds; medians are reported (default 3)
#   --files F      files in the backed-up tree, in directories of 20 (default 2000)
#   --out FILE     markdown result (default benches/results/cache-<date>.md)
#
# The repository is written by stash (version 2) and shared by both tools. Before
# timing, each cache is filled by one untimed run of the step; each timed step of a
# cached variant then starts from that warm cache (the backups add a snapshot and an
# index file per run, which the next run reads). Environment: STASH_BIN (skip the
# cargo build and use this binary), WORK_PARENT (default $TMPDIR or /tmp).
set -euo pipefail

SNAPSHOTS=100
ROUNDS=3
FILES=2000
OUT=""
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --snapshots) SNAPSHOTS="${2:?}"; shift 2 ;;
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --files) FILES="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cache.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
if [ -n "${STASH_BIN:-}" ]; then
    STASH="$STASH_BIN"
else
    (cd "$ROOT" && cargo build --release --quiet -p stash-operator --bin stash)
    STASH="$ROOT/target/release/stash"
fi
command -v restic >/dev/null || { echo "cache.sh: restic is not installed" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "cache.sh: moto_server is not installed (pip install 'moto[server]')" >&2; exit 1; }
[ -n "$OUT" ] || OUT="$HERE/results/cache-$(date -u +%Y-%m-%d-%H%M%S).md"

WORK="$(mktemp -d "${WORK_PARENT:-${TMPDIR:-/tmp}}/stash-cache-bench.XXXXXX")"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs -X PUT "http://127.0.0.1:$PORT/bench" >/dev/null

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="s3:http://127.0.0.1:$PORT/bench/repo"
unset RESTIC_CACHE_DIR
STASH_CACHE="$WORK/stash-cache" RESTIC_CACHE="$WORK/restic-cache"

python3 - "$WORK/data" "$FILES" <<'PY'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(files):
    d = os.path.join(root, "d%03d" % (i // 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(100, 20000)))
PY

cd "$WORK"
"$STASH" init -q >/dev/null
echo "cache.sh: writing $SNAPSHOTS snapshots of $FILES files" >&2
for _ in $(seq "$SNAPSHOTS"); do "$STASH" --no-cache backup -q data; done

# name -> command line
declare -A STEP=(
    [stash-ls]="$STASH --no-cache ls latest"
    [stash-cached-ls]="$STASH --cache-dir $STASH_CACHE ls latest"
    [restic-ls]="restic --no-cache ls latest"
    [restic-cached-ls]="restic --cache-dir $RESTIC_CACHE ls latest"
    [stash-backup]="$STASH --no-cache backup -q data"
    [stash-cached-backup]="$STASH --cache-dir $STASH_CACHE backup -q data"
    [restic-backup]="restic --no-cache backup -q data"
    [restic-cached-backup]="restic --cache-dir $RESTIC_CACHE backup -q data"
)
ORDER=(stash-ls stash-cached-ls restic-ls restic-cached-ls stash-backup stash-cached-backup restic-backup restic-cached-backup)
for s in stash-cached-ls restic-cached-ls; do ${STEP[$s]} >/dev/null; done

TSV="${OUT%.md}.tsv"
mkdir -p "$(dirname "$OUT")"
echo -e "round\tstep\tseconds" >"$TSV"
for r in $(seq "$ROUNDS"); do
    for s in "${ORDER[@]}"; do
        t0=$(date +%s.%N)
        ${STEP[$s]} >/dev/null
        t1=$(date +%s.%N)
        echo -e "$r\t$s\t$(echo "$t1 - $t0" | bc)" >>"$TSV"
    done
done

python3 - "$TSV" "$OUT" "$SNAPSHOTS" "$FILES" "$ROUNDS" "$("$STASH" version | head -1)" "$(restic version)" <<'PY'
import csv, statistics, sys
tsv, out, snaps, files, rounds, sv, rv = sys.argv[1:]
t = {}
for row in csv.DictReader(open(tsv), delimiter="\t"):
    t.setdefault(row["step"], []).append(float(row["seconds"]))
m = {k: statistics.median(v) for k, v in t.items()}
lines = [
    "# Local cache against moto",
    "",
    f"{snaps} snapshots of {files} small files in S3 (moto on loopback); medians of {rounds} interleaved rounds. {sv}; {rv}.",
    "",
    "| step | stash, no cache | stash, cache | restic, no cache | restic, cache | stash cache speed-up | restic cache / stash cache |",
    "|---|---|---|---|---|---|---|",
]
for step, name in (("ls", "`ls latest`"), ("backup", "unchanged backup")):
    a, b = m[f"stash-{step}"], m[f"stash-cached-{step}"]
    c, d = m[f"restic-{step}"], m[f"restic-cached-{step}"]
    lines.append(f"| {name} | {a:.2f} s | {b:.2f} s | {c:.2f} s | {d:.2f} s | {a/b:.2f}x | {d/b:.2f}x |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
