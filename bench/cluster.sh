#!/usr/bin/env bash
# bench/cluster.sh: a 3-node labnode cluster vs a 3-node OpenBao cluster, both on raft
# integrated storage over loopback, one cluster at a time, in the same run.
#
# Per cluster: bring-up time (node 1 start -> init -> unseal -> nodes 2-3 join via retry_join
# -> unsealed -> three voters in sys/storage/raft/configuration), idle RSS per node, KV v2
# write/read throughput and p99 on the active node (c=16 and c=64) and reads through a
# standby, time from kill -9 of the leader to the first successful write on another node,
# and catch-up time of the killed node after restart + unseal. Prints a Markdown table with
# ratios and writes bench/results/cluster-<date>.md.
#
# Knobs: BENCH_DURATION (10), BENCH_WARMUP (3), BENCH_CONCURRENCY ("16 64"), BENCH_READ_KEYS
# (1000), BENCH_SERVERS ("labnode bao"), BENCH_OUT, CLUSTER_GAP_WRITES_S (5: seconds of c=16
# writes while the killed node is down), plus those of lib.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DUR=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONCS=${BENCH_CONCURRENCY:-16 64}
READ_KEYS=${BENCH_READ_KEYS:-1000}
SERVERS=${BENCH_SERVERS:-labnode bao}
GAP_WRITES=${CLUSTER_GAP_WRITES_S:-5}
STAMP=$(date +%Y-%m-%dT%H%M%S)
OUT=${BENCH_OUT:-$BENCH_DIR/results/cluster-$STAMP.md}

bench_setup
ensure_wrk
find_labnode
find_bao

declare -A R=()     # R[kind,metric]
declare -A PORT=()  # PORT[name] API port
declare -A CPORT=() # CPORT[name] cluster port

now_ms() { date +%s%3N; }

# raft_extra KIND NAME: LABNODE_RAFT_EXTRA / BAO_RAFT_EXTRA, and for nodes 2 and 3 a
# retry_join stanza aimed at node 1.
raft_extra() {
  local kind=$1 name=$2 lines
  case $kind in
    labnode) lines=${LABNODE_RAFT_EXTRA:-} ;;
    bao) lines=${BAO_RAFT_EXTRA:-} ;;
  esac
  if [[ $name != "${kind}1" ]]; then
    lines+=$'\n'"  retry_join {"$'\n'"    leader_api_addr = \"http://127.0.0.1:${PORT[${kind}1]}\""$'\n'"  }"
  fi
  # A leading newline keeps the string non-empty, so start_node does not substitute the
  # *_RAFT_EXTRA environment defaults.
  printf '%s' "${lines:-$'\n'}"
}

start_member() {
  local kind=$1 name=$2 id=$3
  start_node "$kind" "$name" "$id" "$(raft_extra "$kind" "$name")" "${PORT[$name]}" "${CPORT[$name]}"
}

# voters NAME TOKEN -> number of voters in the raft configuration as NAME reports it
voters() {
  local out
  out=$(api "$1" GET /v1/sys/storage/raft/configuration "" "$2") || return 0
  python3 -c 'import json,sys
try:
    d=json.loads(sys.argv[1].rsplit("\n",1)[0]); print(sum(1 for s in d["data"]["config"]["servers"] if s.get("voter")))
except Exception: print(0)' "$out"
}

# wait_initialized NAME TIMEOUT_S: seal-status reports initialized (the join challenge arrived)
wait_initialized() {
  local name=$1 timeout=$2 i
  for ((i = 0; i < timeout * 10; i++)); do
    [[ $(curl -s -m 1 "${NODE_ADDR[$name]}/v1/sys/seal-status") == *'"initialized":true'* ]] && return 0
    sleep 0.1
  done
  bench_die "'$name' never reported initialized within ${timeout}s; see ${NODE_LOG[$name]}"
}

# unseal_retry NAME: a joining node may refuse unseal until the join is under way; <= 30 s
unseal_retry() {
  local name=$1 i out
  for ((i = 0; i < 60; i++)); do
    out=$(api "$name" PUT /v1/sys/unseal "{\"key\":\"$BENCH_UNSEAL_KEY\"}")
    [[ ${out##*$'\n'} == 200 && $out == *'"sealed":false'* ]] && return 0
    sleep 0.5
  done
  bench_die "unseal of '$name' did not succeed within 30 s: $out"
}

# leader_of KIND -> name of the node answering /v1/sys/health with 200 (active), or nothing
leader_of() {
  local kind=$1 n
  for n in 1 2 3; do
    node_alive "$kind$n" || continue
    [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "${NODE_ADDR[$kind$n]}/v1/sys/health") == 200 ]] &&
      { echo "$kind$n"; return 0; }
  done
  return 0
}

# autopilot_index LEADER TOKEN NODE_ID -> last_index of NODE_ID in autopilot state (0 if unknown)
autopilot_index() {
  local out
  out=$(api "$1" GET /v1/sys/storage/raft/autopilot/state "" "$2") || { echo 0; return 0; }
  python3 -c 'import json,sys
try:
    d=json.loads(sys.argv[1].rsplit("\n",1)[0])["data"]
    print(d["servers"][sys.argv[2]]["last_index"])
except Exception: print(0)' "$out" "$3"
}

# leader_term KIND TOKEN -> the raft term as the active node's autopilot state reports it
leader_term() {
  local leader out
  leader=$(leader_of "$1")
  [[ -n $leader ]] || { echo 0; return 0; }
  out=$(api "$leader" GET /v1/sys/storage/raft/autopilot/state "" "$2") || { echo 0; return 0; }
  python3 -c 'import json,sys
try:
    d=json.loads(sys.argv[1].rsplit("\n",1)[0])["data"]
    print(max(int(s.get("last_term", 0)) for s in d["servers"].values()))
except Exception: print(0)' "$out"
}

bench_cluster() {
  local kind=$1 n t0 t1 i
  bench_log "=== $kind cluster === (1-min load average $(loadavg))"
  R[$kind,load_start]=$(loadavg)
  for n in 1 2 3; do
    PORT[$kind$n]=$(free_port)
    CPORT[$kind$n]=$(free_port)
  done

  t0=$(now_ms)
  start_member "$kind" "${kind}1" n1
  init_node "${kind}1"
  unseal_node "${kind}1" "$BENCH_UNSEAL_KEY"
  wait_active "${kind}1" 30
  local token=$BENCH_ROOT_TOKEN
  for n in 2 3; do start_member "$kind" "$kind$n" "n$n"; done
  for n in 2 3; do
    wait_initialized "$kind$n" 60
    unseal_retry "$kind$n"
  done
  for ((i = 0; i < 600; i++)); do
    [[ $(voters "${kind}1" "$token") == 3 ]] && break
    sleep 0.1
  done
  [[ $(voters "${kind}1" "$token") == 3 ]] || bench_die "$kind: three voters not reached within 60 s"
  t1=$(now_ms)
  R[$kind,bringup]=$((t1 - t0))
  bench_log "$kind: three voters after ${R[$kind,bringup]} ms"

  enable_kv2 "${kind}1" "$token"
  kv2_ready "${kind}1" "$token"
  local term0
  term0=$(leader_term "$kind" "$token")
  sleep 2
  local sum=0
  for n in 1 2 3; do
    R[$kind,rss$n]=$(rss_kb "$kind$n")
    sum=$((sum + R[$kind,rss$n]))
  done
  R[$kind,rss_idle]=$((sum / 3))
  bench_log "$kind idle RSS per node: ${R[$kind,rss1]} ${R[$kind,rss2]} ${R[$kind,rss3]} kB"

  prefill "${kind}1" "$token" "$READ_KEYS"
  run_wrk write 16 "$WARMUP" "${kind}1" "$token" warm >/dev/null
  run_wrk read 16 "$WARMUP" "${kind}1" "$token" "$READ_KEYS" >/dev/null
  local mode c line target
  for mode in write read standby; do
    for c in $CONCS; do
      target=${kind}1
      local m=$mode arg=$READ_KEYS
      [[ $mode == standby ]] && { target=${kind}2; m=read; }
      [[ $mode == write ]] && arg="w$c"
      line=$(run_wrk "$m" "$c" "$DUR" "$target" "$token" "$arg")
      bench_log "$kind $mode c=$c: $line"
      R[$kind,$mode,$c,rps]=$(field "$line" rps)
      R[$kind,$mode,$c,p99]=$(field "$line" p99_us)
      R[$kind,$mode,$c,err]=$(($(field "$line" non2xx) + $(field "$line" sock_errors)))
    done
  done

  R[$kind,term_load]=$(($(leader_term "$kind" "$token") - term0))

  # Failover: kill -9 the active node, then poll the others with a write until one succeeds.
  local victim
  victim=$(leader_of "$kind")
  [[ -n $victim ]] || bench_die "$kind: no active node before the failover test"
  local code="" winner=""
  t0=$(now_ms)
  kill -KILL "${NODE_PID[$victim]}"
  wait "${NODE_PID[$victim]}" 2>/dev/null || true
  for ((i = 0; i < 1200; i++)); do # <= 60 s (each probe <= 1 s, usually ~ms)
    for n in 1 2 3; do
      [[ $kind$n == "$victim" ]] && continue
      code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' -X POST -H "X-Vault-Token: $token" \
        -H 'Content-Type: application/json' -d '{"data":{"k":"v"}}' \
        "${NODE_ADDR[$kind$n]}/v1/secret/data/bench/failover" || true)
      [[ $code == 200 || $code == 204 ]] && { winner=$kind$n; break; }
    done
    [[ -n $winner ]] && break
    sleep 0.05
  done
  [[ -n $winner ]] || bench_die "$kind: no write succeeded within 60 s of killing $victim"
  R[$kind,failover]=$(($(now_ms) - t0))
  bench_log "$kind: killed $victim; first write succeeded on $winner after ${R[$kind,failover]} ms"

  # Catch-up: write while the victim is down, restart + unseal it, wait until the leader
  # reports its match index at the leader's last index from before the restart.
  local leader
  for ((i = 0; i < 100; i++)); do
    leader=$(leader_of "$kind")
    [[ -n $leader ]] && break
    sleep 0.1
  done
  [[ -n $leader ]] || bench_die "$kind: no active node after the failover"
  run_wrk write 16 "$GAP_WRITES" "$leader" "$token" gap >/dev/null
  local want
  want=$(autopilot_index "$leader" "$token" "n${leader#"$kind"}")
  local vid="n${victim#"$kind"}"
  t0=$(now_ms)
  start_member "$kind" "$victim" "$vid"
  unseal_retry "$victim"
  local got=0
  for ((i = 0; i < 1200; i++)); do # <= 120 s
    got=$(autopilot_index "$leader" "$token" "$vid")
    ((got >= want)) && break
    sleep 0.1
  done
  ((got >= want)) || bench_die "$kind: $victim at index $got, not $want, 120 s after restart"
  R[$kind,catchup]=$(($(now_ms) - t0))
  bench_log "$kind: $victim caught up to index $want in ${R[$kind,catchup]} ms"

  R[$kind,load_end]=$(loadavg)
  for n in 1 2 3; do stop_node "$kind$n"; done
}

for s in $SERVERS; do bench_cluster "$s"; done

# ---------------------------------------------------------------- report
secs() { awk -v v="$1" 'BEGIN { printf "%.2f\n", v / 1000 }'; }
L=labnode B=bao
cell() { # cell SERVER KEY FORMATTER
  local v=${R[$1,$2]:-}
  [[ -n $v ]] && "$3" "$v" || echo "-"
}
row() { # row LABEL KEY FORMATTER better(hi|lo)
  local r
  if [[ $4 == hi ]]; then r="$(ratio "${R[$L,$2]:-}" "${R[$B,$2]:-}") labnode/bao"
  else r="$(ratio "${R[$B,$2]:-}" "${R[$L,$2]:-}") bao/labnode"; fi
  echo "| $1 | $(cell $L "$2" "$3") | $(cell $B "$2" "$3") | $r |"
}

{
  echo "# labnode vs OpenBao, 3-node raft cluster on loopback ($STAMP)"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r); all 3 nodes + wrk share it"
  echo "- labnode: $(labnode_version), git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), release build; OpenBao: $(bao_version); both with default raft timing"
  echo "- load: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), ${WRK_THREADS:-2} threads; ${DUR}s per cell; reads over $READ_KEYS pre-written keys; standby reads aimed at node 2"
  echo "- failover = kill -9 of the active node -> first 2xx KV write on another node (polled every ~50 ms); catch-up = restart + unseal of the killed node -> leader reports its index at the leader's last index after ${GAP_WRITES}s of c=16 writes"
  echo
  echo "| metric | labnode | OpenBao | ratio |"
  echo "|---|---:|---:|---:|"
  row "bring-up to 3 voters (s)" bringup secs lo
  for mode in write read standby; do
    for c in $CONCS; do
      local_label=$mode
      [[ $mode == standby ]] && local_label="read via standby"
      row "$local_label c=$c throughput (req/s)" "$mode,$c,rps" num hi
      row "$local_label c=$c p99 latency (ms)" "$mode,$c,p99" ms lo
    done
  done
  echo "| raft term changes during the load phases (spurious elections) | ${R[$L,term_load]:--} | ${R[$B,term_load]:--} | |"
  row "leader kill -9 -> first write (s)" failover secs lo
  row "killed node restart -> caught up (s)" catchup secs lo
  row "idle RSS per node, mean (MiB)" rss_idle mib lo
  echo "| idle RSS nodes 1/2/3 (MiB) | $(cell $L rss1 mib) / $(cell $L rss2 mib) / $(cell $L rss3 mib) | $(cell $B rss1 mib) / $(cell $B rss2 mib) / $(cell $B rss3 mib) | |"
  echo "| 1-min load average at start / end | ${R[$L,load_start]:--} / ${R[$L,load_end]:--} | ${R[$B,load_start]:--} / ${R[$B,load_end]:--} | |"
  echo
  error_summary write read standby
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
bench_log "wrote $OUT"
