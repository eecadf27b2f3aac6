#!/usr/bin/env bash
# The project's test command (README "Tests"): builds labnode, runs every Rust test and the
# Python tests that drive labnode with real Vault clients (hvac, the OpenBao CLI).
#
#   scripts/test.sh            # everything
#   PYTEST_ARGS="-k wrap" scripts/test.sh
#
# Environment: CARGO_TARGET_DIR (default target/, or ~/.cache/labnode/target when CI=true),
# LABNODE_VENV (default .venv), PYTEST_ARGS (extra pytest arguments),
# LABNODE_SKIP_LOCALSTACK=1 (do not start LocalStack; its tests print SKIP instead of failing),
# LABNODE_SKIP_TERRAFORM=1 (no terraform on PATH; the checks that run it print SKIP instead of
# failing), and scripts/localstack.sh's LOCALSTACK_* variables (e.g. LOCALSTACK_PORT).
# A test whose prerequisite is missing fails unless its LABNODE_SKIP_* variable is 1 (testkit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
started=$(date +%s)
say() { printf '\n==> %s\n' "$*"; }

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ "${CI:-}" = "true" ]; then
    CARGO_TARGET_DIR="$HOME/.cache/labnode/target"
  else
    CARGO_TARGET_DIR="$root/target"
  fi
fi
export CARGO_TARGET_DIR
say "cargo target dir: $CARGO_TARGET_DIR"

# 1. Python venv with the pinned real clients; rebuilt only when the pins file changes.
venv="${LABNODE_VENV:-$root/.venv}"
pins="$root/scripts/requirements-test.txt"
want=$(sha256sum "$pins" | cut -d' ' -f1)
have=$(cat "$venv/.pins.sha256" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -x "$venv/bin/python" ] && [ -x "$venv/bin/bao" ]; then
  say "python venv $venv is up to date with $pins"
else
  say "creating python venv $venv from $pins"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins"
  echo "$want" >"$venv/.pins.sha256"
fi
export LABNODE_BAO="$venv/bin/bao"
export LABNODE_BIN="$CARGO_TARGET_DIR/debug/labnode"

# 2. System packages: ssh2's C build (OpenSSL, zlib headers) and the OpenSSH server the
# ssh-driver tests start on loopback. Installed only when missing (Debian's apt).
missing=()
dpkg -s libssl-dev pkg-config zlib1g-dev >/dev/null 2>&1 || missing+=(libssl-dev pkg-config zlib1g-dev)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo -n)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 3. Build (debug).
say "cargo build --workspace"
cargo build --workspace

logs=$(mktemp -d)
localstack_started=0
cleanup() {
  if [ "$localstack_started" = 1 ]; then
    say "stopping LocalStack"
    scripts/localstack.sh stop || true
  fi
  rm -rf "$logs"
}
trap cleanup EXIT
rust_rc=0
py_rc=0

# LocalStack (EC2, IAM, KMS on 127.0.0.1) for the awskms, auto_join and aws-provider tests, which fail
# without it. One that this checkout's script already runs is reused and left running.
if [ "${LABNODE_SKIP_LOCALSTACK:-}" = "1" ]; then
  say "LABNODE_SKIP_LOCALSTACK=1: LocalStack tests print SKIP"
else
  if scripts/localstack.sh status >/dev/null 2>&1; then
    say "LocalStack already running; reusing it"
  else
    say "starting LocalStack (scripts/localstack.sh start; the first run installs its venv)"
    localstack_started=1
    scripts/localstack.sh start
  fi
  eval "$(scripts/localstack.sh env)"
  say "LocalStack at $LABNODE_LOCALSTACK_ENDPOINT"
fi

# 4. Rust tests: unit tests and the integration tests that start the real binary.
if command -v cargo-nextest >/dev/null 2>&1; then
  say "cargo nextest run --workspace"
  cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$logs/rust" || rust_rc=$?
else
  say "cargo test --workspace"
  cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/rust" || rust_rc=$?
fi

# 5. Python tests with hvac and the real bao CLI against the binary built above.
say "pytest tests/python (LABNODE_BIN=$LABNODE_BIN, LABNODE_BAO=$LABNODE_BAO)"
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider ${PYTEST_ARGS:-} 2>&1 | tee "$logs/py" || py_rc=$?

# 6. One closing line over both runners.
count() {
  # Sums "N <word>" over the runners' summary lines (nextest "Summary", cargo "test result:", pytest's last line).
  cat "$logs/rust" "$logs/py" |
    { grep -E '(Summary \[|^test result:|^[0-9]+ (passed|failed)|^=+ .*(passed|failed))' || true; } |
    { grep -oE "[0-9]+ $1" || true; } | awk '{s += $1} END {print s + 0}'
}
passed=$(count passed)
failed=$(count failed)
skipped=$(( $(count skipped) + $(count ignored) ))
elapsed=$(( $(date +%s) - started ))
say "rust tests exit $rust_rc, python tests exit $py_rc, ${elapsed}s in all"
echo "total: $passed passed, $failed failed, $skipped skipped"
if [ "$rust_rc" -ne 0 ] || [ "$py_rc" -ne 0 ]; then
  exit 1
fi
