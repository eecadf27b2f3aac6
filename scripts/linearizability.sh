#!/usr/bin/env bash
# Linearizability of labnode's KV v2 under leader faults.
#
#   scripts/linearizability.sh                          # 20 kill and 20 pause cycles
#   KILL_CYCLES=3 PAUSE_CYCLES=3 scripts/linearizability.sh
#
# Builds labnode, lab and lincheck (release), brings up an ha3 lab in its own temporary
# LAB_HOME, and runs `lincheck run`: several clients read (on every node), write and
# check-and-set (on the active node) a few KV v2 keys while the leader is killed (kill -9) and
# restarted KILL_CYCLES times, then paused (SIGSTOP) and resumed (SIGCONT) PAUSE_CYCLES
# times. Prints operations, faults, lost acknowledged writes and the checker's verdict; exits
# with lincheck's status (0 linearizable with nothing lost, 1 not). `lab down` runs on exit.
#
# Environment: KILL_CYCLES (20), PAUSE_CYCLES (20), LINCHECK_ARGS (extra `lincheck run`
# flags, e.g. "--clients 8 --pause-ms 3000"), BASE_PORT (28500), HISTORY (where the JSON
# history goes; default inside the temporary directory, kept on failure), PROFILE (release;
# debug uses the dev build), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
kill_cycles="${KILL_CYCLES:-20}"
pause_cycles="${PAUSE_CYCLES:-20}"
base_port="${BASE_PORT:-28500}"

profile="${PROFILE:-release}"
case "$profile" in
  release) build_flag=--release ;;
  debug) build_flag= ;;
  *) echo "PROFILE must be release or debug, not $profile" >&2; exit 1 ;;
esac
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build $build_flag -p labnode -p lab -p lincheck
fi
bin="$target/$profile"
for b in labnode lab lincheck; do
  [ -x "$bin/$b" ] || { echo "$bin/$b not found: build it (without SKIP_BUILD=1)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/linearizability.XXXXXX")"
export LAB_HOME="$work/lab"
export LABNODE_BIN="$bin/labnode"
history="${HISTORY:-$work/history.json}"
status=2
cleanup() {
  if [ "$status" = 0 ]; then
    "$bin/lab" down --purge >/dev/null 2>&1 || true
    [ -n "${HISTORY:-}" ] || rm -rf "$work"
  else
    "$bin/lab" down >/dev/null 2>&1 || true
    echo "kept: $work (history: $history; node logs under $LAB_HOME)" >&2
  fi
}
trap cleanup EXIT

"$bin/lab" up --topology ha3 --base-port "$base_port" >"$work/up.log" 2>&1 \
  || { cat "$work/up.log" >&2; exit 1; }
echo "lab up ($profile build): ha3 on 127.0.0.1:$base_port.. ($LAB_HOME)"
echo "schedule: $kill_cycles leader kill/restart cycles, then $pause_cycles leader pause/resume cycles"
started=$(date +%s)
set +e
# shellcheck disable=SC2086 # LINCHECK_ARGS is a list of flags
"$bin/lincheck" run --lab "$bin/lab" --lab-home "$LAB_HOME" \
  --kill-cycles "$kill_cycles" --pause-cycles "$pause_cycles" --history "$history" ${LINCHECK_ARGS:-}
status=$?
set -e
echo "wall time: $(( $(date +%s) - started ))s, lincheck exit status $status"
exit "$status"
