#!/usr/bin/env bash
# bench/single-node.sh: one labnode node vs one OpenBao (bao) node, each on raft integrated
# storage in a temp dir, on this machine, in the same run, with the same load tool (wrk + Lua),
# one server at a time.
#
# Per server: KV v2 write and read throughput + p50/p99 at each concurrency (default 16 and 64,
# 10 s each after a warm-up), idle RSS (after init + unseal + mount, settled 2 s), RSS after the
# load and peak RSS (VmHWM). Prints a Markdown table with ratios and writes it to
# bench/results/single-node-<date>.md.
#
# Knobs (environment): BENCH_DURATION (10), BENCH_WARMUP (3), BENCH_CONCURRENCY ("16 64"),
# BENCH_READ_KEYS (1000), BENCH_SERVERS ("labnode bao", run in that order), BENCH_OUT (results
# file), plus those of lib.sh (LABNODE_BIN, LABNODE_BAO, BENCH_NO_BUILD, BENCH_KEEP, WRK_THREADS).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DUR=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONCS=${BENCH_CONCURRENCY:-16 64}
READ_KEYS=${BENCH_READ_KEYS:-1000}
SERVERS=${BENCH_SERVERS:-labnode bao}
STAMP=$(date +%Y-%m-%dT%H%M%S)
OUT=${BENCH_OUT:-$BENCH_DIR/results/single-node-$STAMP.md}

bench_setup
ensure_wrk
find_labnode
find_bao

declare -A R=() # R[server,metric]

bench_server() {
  local kind=$1 name=$1
  bench_log "=== $kind === (1-min load average $(loadavg))"
  R[$kind,load_start]=$(loadavg)
  start_node "$kind" "$name" n1
  init_node "$name"
  unseal_node "$name" "$BENCH_UNSEAL_KEY"
  wait_active "$name" 30
  enable_kv2 "$name" "$BENCH_ROOT_TOKEN"
  kv2_ready "$name" "$BENCH_ROOT_TOKEN"
  sleep 2
  R[$kind,rss_idle]=$(rss_kb "$name")
  bench_log "$kind idle RSS ${R[$kind,rss_idle]} kB"

  prefill "$name" "$BENCH_ROOT_TOKEN" "$READ_KEYS"
  bench_log "$kind warm-up ${WARMUP}s write + ${WARMUP}s read"
  run_wrk write 16 "$WARMUP" "$name" "$BENCH_ROOT_TOKEN" warm >/dev/null
  run_wrk read 16 "$WARMUP" "$name" "$BENCH_ROOT_TOKEN" "$READ_KEYS" >/dev/null

  local mode c line
  for mode in write read; do
    for c in $CONCS; do
      local arg=$READ_KEYS
      [[ $mode == write ]] && arg="w$c"
      line=$(run_wrk "$mode" "$c" "$DUR" "$name" "$BENCH_ROOT_TOKEN" "$arg")
      bench_log "$kind $mode c=$c: $line"
      R[$kind,$mode,$c,rps]=$(field "$line" rps)
      R[$kind,$mode,$c,p50]=$(field "$line" p50_us)
      R[$kind,$mode,$c,p99]=$(field "$line" p99_us)
      R[$kind,$mode,$c,err]=$(($(field "$line" non2xx) + $(field "$line" sock_errors)))
    done
  done
  R[$kind,load_end]=$(loadavg)
  R[$kind,rss_load]=$(rss_kb "$name")
  R[$kind,rss_peak]=$(awk '/^VmHWM:/ {print $2}' "/proc/${NODE_PID[$name]}/status")
  R[$kind,disk]=$(du -sk "${NODE_DIR[$name]}/raft" | cut -f1)
  bench_log "$kind RSS after load ${R[$kind,rss_load]} kB (peak ${R[$kind,rss_peak]} kB)"
  stop_node "$name"
}

for s in $SERVERS; do bench_server "$s"; done

# ---------------------------------------------------------------- report

L=labnode B=bao
have_both=0
[[ -n "${R[$L,rss_idle]:-}" && -n "${R[$B,rss_idle]:-}" ]] && have_both=1
cell() { # cell SERVER KEY FORMATTER
  local v=${R[$1,$2]:-}
  [[ -n $v ]] && "$3" "$v" || echo "-"
}

{
  echo "# labnode vs OpenBao, single node on raft ($STAMP)"
  echo
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
  echo "- labnode: $(labnode_version), git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), release build ($LABNODE_BIN)"
  echo "- OpenBao: $(bao_version)"
  echo "- load: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), ${WRK_THREADS:-2} threads, bench/lua/kv-{write,read}.lua; ${DUR}s per cell after ${WARMUP}s write + ${WARMUP}s read warm-up; reads over $READ_KEYS pre-written keys; servers run one at a time"
  [[ -n "${LABNODE_RAFT_EXTRA:-}${BAO_RAFT_EXTRA:-}" ]] &&
    echo "- extra raft settings: labnode \`${LABNODE_RAFT_EXTRA:-none}\`, bao \`${BAO_RAFT_EXTRA:-none}\`"
  echo "- write = KV v2 POST /v1/secret/data/bench/<unique key> (~100 B JSON); read = GET of a pre-written key"
  echo
  echo "| metric | labnode | OpenBao | ratio |"
  echo "|---|---:|---:|---:|"
  for mode in write read; do
    for c in $CONCS; do
      echo "| $mode c=$c throughput (req/s) | $(cell $L "$mode,$c,rps" num) | $(cell $B "$mode,$c,rps" num) | $(ratio "${R[$L,$mode,$c,rps]:-}" "${R[$B,$mode,$c,rps]:-}") labnode/bao |"
      echo "| $mode c=$c p99 latency (ms) | $(cell $L "$mode,$c,p99" ms) | $(cell $B "$mode,$c,p99" ms) | $(ratio "${R[$B,$mode,$c,p99]:-}" "${R[$L,$mode,$c,p99]:-}") bao/labnode |"
      echo "| $mode c=$c p50 latency (ms) | $(cell $L "$mode,$c,p50" ms) | $(cell $B "$mode,$c,p50" ms) | $(ratio "${R[$B,$mode,$c,p50]:-}" "${R[$L,$mode,$c,p50]:-}") bao/labnode |"
    done
  done
  echo "| idle RSS (MiB) | $(cell $L rss_idle mib) | $(cell $B rss_idle mib) | $(ratio "${R[$B,rss_idle]:-}" "${R[$L,rss_idle]:-}") bao/labnode |"
  echo "| RSS after load (MiB) | $(cell $L rss_load mib) | $(cell $B rss_load mib) | $(ratio "${R[$B,rss_load]:-}" "${R[$L,rss_load]:-}") bao/labnode |"
  echo "| peak RSS, VmHWM (MiB) | $(cell $L rss_peak mib) | $(cell $B rss_peak mib) | $(ratio "${R[$B,rss_peak]:-}" "${R[$L,rss_peak]:-}") bao/labnode |"
  echo "| 1-min load average at start / end | ${R[$L,load_start]:--} / ${R[$L,load_end]:--} | ${R[$B,load_start]:--} / ${R[$B,load_end]:--} | |"
  echo "| raft dir after run (MiB) | $(cell $L disk mib) | $(cell $B disk mib) | |"
  echo
  error_summary write read
  echo
  echo "Targets (issue): throughput >= 2x OpenBao, idle RSS <= 1/4 of OpenBao (aim: 3x writes, 5x reads, 1/5 memory)."
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
((have_both)) || bench_log "note: only one server measured, no ratios"
bench_log "wrote $OUT"
