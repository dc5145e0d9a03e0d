#!/usr/bin/env bash
# Restores of many small files: stash against restic on one repository, interleaved,
# with every restored tree compared with the source.
#
# Usage: benches/restore-small.sh [--files N] [--source DIR] [--rounds R] [--out FILE]
#   --files N    generate N small files (0..8 KiB, half random, half log-like text,
#                100 per directory; default 30000)
#   --source DIR restore a copy of a real tree instead (e.g. /usr/share)
#   --rounds R   rounds; medians are reported (default 5)
#   --out FILE   markdown result (default benches/results/restore-small-<date>.md)
#
# The repository (version 2) is written once by stash. Each restore goes into a
# directory of its own and nothing is deleted before the run ends: ext4 without a
# journal scans past freshly deleted inodes when it creates files, which would charge
# one tool for the other's clean-up. The tools alternate, the first one changing per
# round; every step starts after a `sync`. Environment: STASH_BIN (skip the cargo
# build), WORK_PARENT (default $TMPDIR or /tmp).
set -euo pipefail

FILES=30000
SOURCE=""
ROUNDS=5
OUT=""
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --files) FILES="${2:?}"; shift 2 ;;
        --source) SOURCE="${2:?}"; shift 2 ;;
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "restore-small.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
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
command -v restic >/dev/null || { echo "restore-small.sh: restic is not installed" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "restore-small.sh: GNU time (/usr/bin/time) is required" >&2; exit 1; }
[ -n "$OUT" ] || OUT="$HERE/results/restore-small-$(date -u +%Y-%m-%d-%H%M%S).md"

WORK="$(mktemp -d "${WORK_PARENT:-${TMPDIR:-/tmp}}/stash-restore-small.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
if [ -n "$SOURCE" ]; then
    cp -a "$SOURCE" data
    WHAT="a copy of $SOURCE"
else
    python3 - data "$FILES" <<'PY'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(11)
words = "restore small file tree pack blob index snapshot chunk level info debug".split()
for i in range(files):
    d = os.path.join(root, "a%02d" % (i // 10000), "b%03d" % (i // 100 % 100))
    os.makedirs(d, exist_ok=True)
    size = int(rng.random() ** 2 * 8192)
    if i % 2:
        body = rng.randbytes(size)
    else:
        line = lambda: "%06d %s %s\n" % (rng.randrange(10**6), rng.choice(words), rng.choice(words))
        body = "".join(line() for _ in range(size // 20 + 1)).encode()[:size]
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(body)
PY
    WHAT="$FILES generated files of 0..8 KiB"
fi
COUNT=$(find data -type f | wc -l)
BYTES=$(du -sb data | cut -f1)
export RESTIC_PASSWORD=bench
"$STASH" -r repo init -q
"$STASH" -r repo backup -q data

TSV="${OUT%.md}.tsv"
mkdir -p "$(dirname "$OUT")"
echo -e "round\ttool\twall\tuser\tsys\trss_kb" >"$TSV"
step() { # tool round
    local dir="out-$1-$2"
    sync
    local cmd=("$STASH" -r repo restore latest --target "$dir" -q)
    [ "$1" = stash ] || cmd=(restic --no-cache -r repo restore latest --target "$dir" -q)
    /usr/bin/time -f "%e %U %S %M" -o time.txt "${cmd[@]}"
    read -r wall user sys rss <time.txt
    echo -e "$2\t$1\t$wall\t$user\t$sys\t$rss" >>"$TSV"
    if [ "$2" = 1 ]; then
        diff -r --no-dereference data "$dir/data" >/dev/null \
            || { echo "restore-small.sh: $1's restore differs from the source" >&2; exit 1; }
    fi
}
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order=(stash restic); else order=(restic stash); fi
    for t in "${order[@]}"; do step "$t" "$r"; done
done

python3 - "$TSV" "$OUT" "$WHAT" "$COUNT" "$BYTES" "$ROUNDS" "$("$STASH" version | head -1)" "$(restic version)" <<'PY'
import csv, statistics, sys
tsv, out, what, count, nbytes, rounds, sv, rv = sys.argv[1:]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
med = lambda tool, k: statistics.median(float(r[k]) for r in rows if r["tool"] == tool)
s, r = {k: med("stash", k) for k in ("wall", "user", "sys", "rss_kb")}, {k: med("restic", k) for k in ("wall", "user", "sys", "rss_kb")}
per_round = []
for n in sorted({x["round"] for x in rows}, key=int):
    w = {x["tool"]: float(x["wall"]) for x in rows if x["round"] == n}
    per_round.append("%.2fx" % (w["restic"] / w["stash"]))
lines = [
    "# Restore of many small files",
    "",
    f"{what}: {count} files, {int(nbytes) / 2**20:.1f} MiB; medians of {rounds} interleaved rounds, both restores of round 1 compared with the source (`diff -r`). {sv}; {rv}.",
    "",
    "| tool | wall | user CPU | system CPU | peak RSS |",
    "|---|---|---|---|---|",
    f"| stash | {s['wall']:.2f} s | {s['user']:.2f} s | {s['sys']:.2f} s | {s['rss_kb'] / 1024:.0f} MiB |",
    f"| restic | {r['wall']:.2f} s | {r['user']:.2f} s | {r['sys']:.2f} s | {r['rss_kb'] / 1024:.0f} MiB |",
    "",
    f"restic/stash wall: {r['wall'] / s['wall']:.2f}x (per round: {', '.join(per_round)}); CPU (user+sys): {(r['user'] + r['sys']) / (s['user'] + s['sys']):.2f}x.",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
