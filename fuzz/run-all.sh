#!/usr/bin/env bash
# Builds every fuzz target once, runs each for SECONDS (default 30) and prints, per
# target, libFuzzer's executed units and exec/s. Exits non-zero if any target
# crashed (panic, sanitizer report, timeout, out-of-memory) or failed to start.
# Targets with seeds in fuzz/seeds/<target> (make-seeds.sh) start from them.
#
#   fuzz/run-all.sh [SECONDS]
#
# Environment:
#   TARGETS           space-separated subset of targets (default: all, `cargo fuzz list`)
#   CARGO_TARGET_DIR  where to build (default: cargo's, fuzz/target)
#   NICE              prefix for cargo and the fuzzers (default: "nice -n 19")
#   TIMEOUT           libFuzzer -timeout per input in seconds (default 60)
#   FUZZ_ARGS         extra libFuzzer arguments, e.g. "-rss_limit_mb=4096"
#   RUNS              also stop each target after this many executions (with SECONDS 0,
#                     the executions alone decide: `RUNS=10000000 fuzz/run-all.sh 0`)
#
# Needs a nightly toolchain (`rustup toolchain list`); installs cargo-fuzz from
# crates.io if missing. Corpora grow in fuzz/corpus/<target>, crash inputs land in
# fuzz/artifacts/<target>/ (both ignored by git); logs go to a temporary directory
# whose path is printed.
set -uo pipefail

secs=${1:-30}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2
read -r -a nice <<<"${NICE-nice -n 19}"
timeout=${TIMEOUT:-60}
read -r -a extra <<<"${FUZZ_ARGS:-}"
case ${RUNS:-} in
'') ;;
*[!0-9]*)
    echo "run-all: RUNS must be a number of executions" >&2
    exit 2
    ;;
*) extra+=("-runs=$RUNS") ;;
esac
if [ "$secs" = 0 ] && [ -z "${RUNS:-}" ]; then
    echo "run-all: SECONDS 0 needs RUNS, or the first target never ends" >&2
    exit 2
fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "run-all: cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-all: installing cargo-fuzz" >&2
    "${nice[@]}" cargo install cargo-fuzz --locked || exit 2
fi

echo "run-all: building all targets (cargo +nightly fuzz build -O)" >&2
"${nice[@]}" cargo +nightly fuzz build -O || {
    echo "run-all: build failed" >&2
    exit 2
}

if [ -n "${TARGETS:-}" ]; then
    read -r -a targets <<<"$TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
logs=$(mktemp -d "${TMPDIR:-/tmp}/stash-fuzz-logs.XXXXXX")
echo "run-all: ${#targets[@]} targets, ${secs}s each (0: no time limit)${RUNS:+, at most $RUNS executions}; logs in $logs" >&2

stat() { # stat NAME LOG: the value of libFuzzer's final `stat::NAME: VALUE` line
    sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -n 1
}

failed=()
printf '%-20s %14s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    log=$logs/$t.log
    mkdir -p "corpus/$t" "artifacts/$t"
    # The committed seeds (make-seeds.sh) are read beside the corpus, never written.
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    # -O as in the build above, so `run` reuses it instead of rebuilding.
    "${nice[@]}" cargo +nightly fuzz run -O "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout="$timeout" "${extra[@]}" \
        >"$log" 2>&1
    rc=$?
    execs=$(stat number_of_executed_units "$log")
    rate=$(stat average_exec_per_sec "$log")
    if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        why=$(grep -m 1 -E 'panicked at|==ERROR|ERROR: libFuzzer|Test unit written|error:' "$log")
        [ -n "$why" ] && result="$result: $why"
        failed+=("$t")
    fi
    printf '%-20s %14s %10s  %s\n' "$t" "${execs:--}" "${rate:--}" "$result"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "run-all: ${#failed[@]} target(s) failed: ${failed[*]} (logs in $logs, inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "run-all: all ${#targets[@]} targets ran without a crash" >&2
