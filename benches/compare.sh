#!/usr/bin/env bash
# Compare stash with restic (and rustic, when it is on PATH) on the shared data set.
#
# Usage: benches/compare.sh [--scale S] [--rounds N] [--out FILE] [--keep] [--no-verify] [--simd]
#   --scale S    data set scale for gen_dataset.py (default 1.0, ~1 GiB; 0.01 is a smoke test)
#   --rounds N   rounds, each with fresh repositories (default 3); medians are reported
#   --out FILE   markdown result (default benches/results/compare-<date>.md); the raw
#                measurements go beside it as FILE with .tsv instead of .md
#   --keep       keep the work directory (data, repositories, logs) for inspection
#   --no-verify  skip the check that each tool's restore matches the data (round 1)
#   --simd       also run stash built with the opt-in `simd-crypto` feature, as tool
#                stash-simd (STASH_SIMD_BIN skips its build)
#
# Per round, every tool gets a fresh repository (version 2, zstd) and runs, on exactly
# the same bytes:
#   init, open (list the snapshots of the empty repository: the fixed cost of every
#   command, mostly the key derivation), first backup, unchanged backup (parent used),
#   [the data is mutated once: gen_dataset.py mutate --gen 1, untimed]
#   backup after mutate, restore latest into an empty directory, check --read-data,
#   forget --keep-last 1 followed by prune (one timed step).
# Tools are interleaved step by step (A B A B ...) and the order of tools rotates per
# round. Each step is measured with GNU time: wall seconds, user+sys CPU seconds, peak
# RSS. The repository size after the first backup is recorded with `du -sb`. Every
# step starts after a `sync` (untimed), so none pays for the writeback of the data
# set copy or of the previous step's files.
#
# The data set comes from benches/gen_dataset.py. Environment: STASH_BIN (skip the
# cargo build and use this binary), WORK_PARENT (where the temporary work directory
# goes, default $TMPDIR or /tmp).
set -euo pipefail

SCALE=1.0
ROUNDS=3
OUT=""
KEEP=0
VERIFY=1
SIMD=0

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE="${2:?--scale needs a value}"; shift 2 ;;
        --scale=*) SCALE="${1#*=}"; shift ;;
        --rounds) ROUNDS="${2:?--rounds needs a value}"; shift 2 ;;
        --rounds=*) ROUNDS="${1#*=}"; shift ;;
        --out) OUT="${2:?--out needs a value}"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --keep) KEEP=1; shift ;;
        --no-verify) VERIFY=0; shift ;;
        --simd) SIMD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds must be a positive integer" >&2; exit 2; }
[[ "$SCALE" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "compare.sh: --scale must be a positive number" >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))"
GEN="$HERE/gen_dataset.py"
command -v python3 >/dev/null || { echo "compare.sh: python3 is required" >&2; exit 1; }

# GNU time for wall/CPU/peak RSS.
TIME_BIN=/usr/bin/time
if ! "$TIME_BIN" -f "%e" true >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "compare.sh: installing GNU time" >&2
        apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
    fi
    "$TIME_BIN" -f "%e" true >/dev/null 2>&1 || {
        echo "compare.sh: GNU time is required at $TIME_BIN (apt-get install time)" >&2
        exit 1
    }
fi

command -v restic >/dev/null || { echo "compare.sh: restic is not on PATH" >&2; exit 1; }
TOOLS=(stash restic)
if command -v rustic >/dev/null; then TOOLS+=(rustic); fi

if [ -n "${STASH_BIN:-}" ]; then
    STASH="$STASH_BIN"
else
    echo "compare.sh: building stash (release)" >&2
    (cd "$ROOT" && cargo build --release --quiet -p stash-operator --bin stash)
    STASH="$ROOT/target/release/stash"
fi
[ -x "$STASH" ] || { echo "compare.sh: no stash binary at $STASH" >&2; exit 1; }
if [ "$SIMD" = 1 ]; then
    if [ -n "${STASH_SIMD_BIN:-}" ]; then
        STASH_SIMD="$STASH_SIMD_BIN"
    else
        # Cargo keeps both feature sets' artifacts; only the final binary is shared,
        # so the feature build is copied aside (after the default one was).
        echo "compare.sh: building stash with simd-crypto (release)" >&2
        (cd "$ROOT" && cargo build --release --quiet -p stash-operator --bin stash --features stash-agent/simd-crypto)
        STASH_SIMD="$ROOT/target/release/stash-simd-crypto"
        cp "$ROOT/target/release/stash" "$STASH_SIMD"
        if [ -z "${STASH_BIN:-}" ]; then
            STASH="$ROOT/target/release/stash-default"
            (cd "$ROOT" && cargo build --release --quiet -p stash-operator --bin stash)
            cp "$ROOT/target/release/stash" "$STASH"
        fi
    fi
    [ -x "$STASH_SIMD" ] || { echo "compare.sh: no stash binary at $STASH_SIMD" >&2; exit 1; }
    TOOLS=(stash stash-simd "${TOOLS[@]:1}")
fi

DATE="$(date +%Y-%m-%d-%H%M%S)"
if [ -z "$OUT" ]; then
    mkdir -p "$HERE/results"
    OUT="$HERE/results/compare-$DATE.md"
fi
mkdir -p "$(dirname "$OUT")"
RAW="${OUT%.md}.tsv"
[ "$RAW" != "$OUT" ] || RAW="$OUT.tsv"

WORK="$(mktemp -d "${WORK_PARENT:-${TMPDIR:-/tmp}}/stash-compare.XXXXXX")"
cleanup() {
    local rc=$?
    if [ "$KEEP" = 1 ]; then
        echo "compare.sh: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export RESTIC_PASSWORD="compare-password"
export RUSTIC_PASSWORD="$RESTIC_PASSWORD"
# restic's and rustic's caches: one per round (XDG_CACHE_HOME, set below).
export GOMAXPROCS="${GOMAXPROCS:-$(nproc)}"
LOGS="$WORK/logs"
mkdir -p "$LOGS"

# Each round works in a directory of its own (data copy, repositories, restores), and
# nothing is deleted until the end: ext4 skips recently deleted inodes when it
# allocates new ones, and after 20,000 files were removed the scan for a free inode
# made file creation cost several times its normal kernel time for minutes, which
# swamped restore times. Within a round every tool backs up the same path, so
# snapshots and parents look alike. Needs about 5 GB per round at scale 1.0.
BASE="$WORK/base"
echo "compare.sh: generating the data set (scale $SCALE) in $BASE" >&2
python3 "$GEN" gen "$BASE" --scale "$SCALE" >"$LOGS/gen.log"
BYTES="$(du -sb "$BASE" | cut -f1)"
FILES="$(find "$BASE" -type f | wc -l)"
MANIFEST_BASE="$(python3 "$GEN" manifest "$BASE")"

printf 'round\ttool\tstep\twall_s\tuser_s\tsys_s\tmaxrss_kib\n' >"$RAW"

run_step() {  # run_step ROUND TOOL STEP COMMAND...: runs and records one measured step
    local round="$1" tool="$2" step="$3"; shift 3
    local tf="$WORK/time.out" log="$LOGS/r$round-$tool-$step.log"
    # Untimed: write back what earlier steps (and the data set copy) left dirty, so
    # no tool's step pays for another's writes.
    sync
    if ! "$TIME_BIN" -f "%e %U %S %M" -o "$tf" "$@" >"$log" 2>&1; then
        echo "compare.sh: round $round: $tool $step failed; log: $log" >&2
        tail -n 20 "$log" >&2
        KEEP=1
        exit 1
    fi
    local wall user sys rss
    read -r wall user sys rss < <(tail -n 1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$tool" "$step" "$wall" "$user" "$sys" "$rss" >>"$RAW"
    printf '  %-7s %-16s wall %7.2f s  cpu %7.2f s  rss %7.1f MiB\n' "$tool" "$step" "$wall" \
        "$(echo "$user $sys" | awk '{print $1+$2}')" "$(echo "$rss" | awk '{print $1/1024}')" >&2
}

# do_step ROUND TOOL STEP: the tool's command for STEP, measured.
do_step() {
    local round="$1" tool="$2" step="$3"
    local repo="$ROUND_DIR/repo-$tool" target="$ROUND_DIR/restore-$tool"
    local STASH="$STASH" kind="$tool"
    if [ "$tool" = stash-simd ]; then STASH="$STASH_SIMD"; kind=stash; fi
    case "$kind:$step" in
        stash:init) run_step "$round" "$tool" "$step" "$STASH" -r "$repo" init --repository-version 2 ;;
        stash:backup-first-fastcdc)
            "$STASH" -r "$repo-fastcdc" init --repository-version 2 --chunker fastcdc >"$LOGS/r$round-init-fastcdc.log" 2>&1
            run_step "$round" "$tool" "$step" "$STASH" -r "$repo-fastcdc" backup "$DATA" ;;
        stash:backup*) run_step "$round" "$tool" "$step" "$STASH" -r "$repo" backup "$DATA" ;;
        stash:open) run_step "$round" "$tool" "$step" "$STASH" -r "$repo" snapshots ;;
        stash:restore) run_step "$round" "$tool" "$step" "$STASH" -r "$repo" restore latest --target "$target" ;;
        stash:check) run_step "$round" "$tool" "$step" "$STASH" -r "$repo" check --read-data ;;
        stash:forget+prune) run_step "$round" "$tool" "$step" sh -c \
            '"$1" -r "$2" forget --keep-last 1 && "$1" -r "$2" prune' sh "$STASH" "$repo" ;;
        restic:init) run_step "$round" "$tool" "$step" restic -r "$repo" init --repository-version 2 ;;
        restic:backup*) run_step "$round" "$tool" "$step" restic -r "$repo" backup "$DATA" ;;
        restic:open) run_step "$round" "$tool" "$step" restic -r "$repo" snapshots ;;
        restic:restore) run_step "$round" "$tool" "$step" restic -r "$repo" restore latest --target "$target" ;;
        restic:check) run_step "$round" "$tool" "$step" restic -r "$repo" check --read-data ;;
        restic:forget+prune) run_step "$round" "$tool" "$step" sh -c \
            'restic -r "$1" forget --keep-last 1 && restic -r "$1" prune' sh "$repo" ;;
        rustic:init) run_step "$round" "$tool" "$step" rustic -r "$repo" init ;;
        rustic:backup*) run_step "$round" "$tool" "$step" rustic -r "$repo" backup "$DATA" ;;
        rustic:open) run_step "$round" "$tool" "$step" rustic -r "$repo" snapshots ;;
        rustic:restore) run_step "$round" "$tool" "$step" rustic -r "$repo" restore latest "$target" ;;
        rustic:check) run_step "$round" "$tool" "$step" rustic -r "$repo" check --read-data ;;
        rustic:forget+prune) run_step "$round" "$tool" "$step" sh -c \
            'rustic -r "$1" forget --keep-last 1 && rustic -r "$1" prune' sh "$repo" ;;
        *) echo "compare.sh: no command for $tool $step" >&2; exit 1 ;;
    esac
}

# verify_restore TOOL: the restored tree must equal the data (manifest of names+content).
verify_restore() {
    local tool="$1" target="$ROUND_DIR/restore-$tool" got
    local where="$target${DATA}"
    [ -d "$where" ] || where="$target/$(basename "$DATA")"
    [ -d "$where" ] || where="$target"
    got="$(python3 "$GEN" manifest "$where")"
    if [ "$got" != "$MANIFEST_MUTATED" ]; then
        echo "compare.sh: $tool restore differs from the data (manifest $got vs $MANIFEST_MUTATED)" >&2
        KEEP=1
        exit 1
    fi
    echo "  $tool restore verified" >&2
}

n_tools=${#TOOLS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order of tools each round.
    order=()
    for ((i = 0; i < n_tools; i++)); do order+=("${TOOLS[$(((i + r - 1) % n_tools))]}"); done
    echo "compare.sh: round $r/$ROUNDS (${order[*]})" >&2
    ROUND_DIR="$WORK/r$r"
    DATA="$ROUND_DIR/data"
    export XDG_CACHE_HOME="$ROUND_DIR/cache"
    mkdir -p "$XDG_CACHE_HOME"
    cp -a "$BASE" "$DATA"
    for step in init open backup-first backup-unchanged; do
        for tool in "${order[@]}"; do
            do_step "$r" "$tool" "$step"
            if [ "$step" = backup-first ]; then
                size="$(du -sb "$ROUND_DIR/repo-$tool" | cut -f1)"
                printf '%s\t%s\trepo-size\t%s\t0\t0\t0\n' "$r" "$tool" "$size" >>"$RAW"
            fi
        done
        # A repository created with FastCDC (stash only; peers are compared with
        # their default first backup).
        if [ "$step" = backup-first ]; then do_step "$r" stash backup-first-fastcdc; fi
    done
    python3 "$GEN" mutate "$DATA" --gen 1 >"$LOGS/r$r-mutate.log"
    [ "$r" != 1 ] || MANIFEST_MUTATED="$(python3 "$GEN" manifest "$DATA")"
    for step in backup-mutated restore check forget+prune; do
        for tool in "${order[@]}"; do
            if [ "$step" = restore ]; then mkdir -p "$ROUND_DIR/restore-$tool"; fi
            do_step "$r" "$tool" "$step"
            if [ "$step" = restore ]; then
                if [ "$VERIFY" = 1 ] && [ "$r" = 1 ]; then verify_restore "$tool"; fi
            fi
        done
    done
done

# Medians and ratios.
python3 - "$RAW" "$OUT" "$SCALE" "$ROUNDS" "$BYTES" "$FILES" "$MANIFEST_BASE" "$DATE" \
    "$("$STASH" --version 2>/dev/null || echo stash)" "$(restic version | head -n 1)" \
    "$(command -v rustic >/dev/null && rustic --version 2>/dev/null | head -n 1 || true)" \
    "$(nproc)" <<'PY'
import csv, statistics, sys
raw, out, scale, rounds, nbytes, nfiles, manifest, date, v_stash, v_restic, v_rustic, ncpu = sys.argv[1:13]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
order = ["stash", "stash-simd", "restic", "rustic"]
tools.sort(key=lambda t: order.index(t) if t in order else 99)
peers = [t for t in tools if t != "stash"]
steps = ["init", "open", "backup-first", "backup-first-fastcdc", "backup-unchanged", "backup-mutated", "restore", "check", "forget+prune"]
names = {"init": "init", "open": "open (list snapshots: the key derivation every command pays)", "backup-first": "first backup",
         "backup-first-fastcdc": "first backup, stash repo with FastCDC (peers: their first backup)", "backup-unchanged": "unchanged backup",
         "backup-mutated": "backup after mutate", "restore": "restore",
         "check": "check --read-data", "forget+prune": "forget + prune"}

def med(tool, step, f):
    if tool != "stash" and step == "backup-first-fastcdc":
        step = "backup-first"
    v = [f(r) for r in rows if r["tool"] == tool and r["step"] == step]
    return statistics.median(v) if v else None

wall = lambda r: float(r["wall_s"])
cpu = lambda r: float(r["user_s"]) + float(r["sys_s"])
user = lambda r: float(r["user_s"])
rss = lambda r: float(r["maxrss_kib"]) / 1024.0

def fmt(x, unit=""):
    if x is None:
        return "-"
    if unit == "MiB":
        return "%.0f MiB" % x
    return "%.2f s" % x

def ratio(peer, base):
    if peer is None or base is None or base <= 0:
        return "-"
    return "%.2fx" % (peer / base)

hdr = ["step", "stash wall"] + ["%s wall" % p for p in peers] + ["%s/stash" % p for p in peers]
hdr += ["stash CPU"] + ["%s CPU" % p for p in peers]
hdr += ["stash RSS"] + ["%s RSS" % p for p in peers]
lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
for s in steps:
    if med("stash", s, wall) is None:
        continue
    w = {t: med(t, s, wall) for t in tools}
    c = {t: med(t, s, cpu) for t in tools}
    m = {t: med(t, s, rss) for t in tools}
    cells = [names[s], fmt(w["stash"])] + [fmt(w[p]) for p in peers]
    cells += [ratio(w[p], w["stash"]) for p in peers]
    cells += [fmt(c["stash"])] + [fmt(c[p]) for p in peers]
    cells += [fmt(m["stash"], "MiB")] + [fmt(m[p], "MiB") for p in peers]
    lines.append("| " + " | ".join(cells) + " |")

size = {t: med(t, "repo-size", wall) for t in tools}
mib = lambda b: "%.1f MiB" % (b / 2**20) if b is not None else "-"
size_line = "Repository size after the first backup: " + ", ".join(
    "%s %s" % (t, mib(size[t])) for t in tools)
if size["stash"]:
    size_line += " (" + ", ".join("%s/stash %.3f" % (p, size[p] / size["stash"]) for p in peers if size[p]) + ")"
first = med("stash", "backup-first", wall)
tp = []
for t in tools:
    w = med(t, "backup-first", wall)
    if w:
        tp.append("%s %.0f MB/s" % (t, int(nbytes) / w / 1e6))
restore_user = ", ".join("%s %.2f s" % (t, med(t, "restore", user)) for t in tools if med(t, "restore", user) is not None)

text = []
text.append("# stash vs %s: scale %s, %s round(s), medians" % (" vs ".join(peers), scale, rounds))
text.append("")
text.append("Data set: gen_dataset.py --scale %s, %s files, %.1f MiB (manifest %s...), mutate --gen 1 before the third backup." % (
    scale, nfiles, int(nbytes) / 2**20, manifest[:12]))
text.append("Run %s on %s CPU(s); %s; %s%s. Ratios are peer wall time / stash wall time (above 1: stash faster)." % (
    date, ncpu, v_stash, v_restic, ("; " + v_rustic) if v_rustic else ""))
text.append("")
text += lines
text.append("")
text.append(size_line + ".")
text.append("First backup throughput: " + ", ".join(tp) + ".")
if restore_user:
    text.append("Restore user CPU (less noisy than wall time on this VM): " + restore_user + ".")
text.append("CPU = user + sys seconds; RSS = peak resident set (GNU time %M); forget + prune is one step (both commands).")
text.append("")
text.append("Raw measurements: `%s`." % raw.split("/")[-1])
doc = "\n".join(text) + "\n"
open(out, "w").write(doc)
print(doc)
PY
echo "compare.sh: wrote $OUT and $RAW" >&2
