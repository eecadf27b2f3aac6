#!/usr/bin/env bash
# bench/write-soak.sh: sustained KV v2 writes in back-to-back rounds, one server at a time, to
# show how write throughput, p99, RSS and the raft dir evolve as the store grows.
# (labnode's write rate was seen to collapse after ~40-65k writes; see docs/benchmarks.md.)
#
# Knobs: SOAK_ROUNDS (12), SOAK_ROUND_SECONDS (4), SOAK_CONCURRENCY (16),
# BENCH_SERVERS ("labnode bao"), BENCH_OUT, plus those of lib.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${SOAK_ROUNDS:-12}
RDUR=${SOAK_ROUND_SECONDS:-4}
C=${SOAK_CONCURRENCY:-16}
SERVERS=${BENCH_SERVERS:-labnode bao}
STAMP=$(date +%Y-%m-%dT%H%M%S)
OUT=${BENCH_OUT:-$BENCH_DIR/results/write-soak-$STAMP.md}

bench_setup
ensure_wrk
find_labnode
find_bao

{
  echo "# KV v2 write soak, c=$C, ${ROUNDS} x ${RDUR}s rounds per server ($STAMP)"
  echo
  echo "- labnode: $(labnode_version), git $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); OpenBao: $(bao_version)"
  [[ -n "${LABNODE_RAFT_EXTRA:-}${BAO_RAFT_EXTRA:-}" ]] &&
    echo "- extra raft settings: labnode \`${LABNODE_RAFT_EXTRA:-none}\`, bao \`${BAO_RAFT_EXTRA:-none}\`"
  echo
  echo "| server | round | writes so far | req/s | p50 ms | p99 ms | RSS MiB | raft dir MiB | load avg |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$OUT.tmp"

for kind in $SERVERS; do
  start_node "$kind" "$kind" n1
  init_node "$kind"
  unseal_node "$kind" "$BENCH_UNSEAL_KEY"
  wait_active "$kind" 30
  enable_kv2 "$kind" "$BENCH_ROOT_TOKEN"
  kv2_ready "$kind" "$BENCH_ROOT_TOKEN"
  total=0
  for ((r = 1; r <= ROUNDS; r++)); do
    line=$(run_wrk write "$C" "$RDUR" "$kind" "$BENCH_ROOT_TOKEN" "soak$r")
    total=$((total + $(field "$line" requests)))
    row=$(awk -v k="$kind" -v r="$r" -v t="$total" -v rps="$(field "$line" rps)" \
      -v p50="$(field "$line" p50_us)" -v p99="$(field "$line" p99_us)" \
      -v rss="$(rss_kb "$kind")" -v disk="$(du -sk "${NODE_DIR[$kind]}/raft" | cut -f1)" -v la="$(loadavg)" \
      'BEGIN { printf "| %s | %d | %d | %.0f | %.1f | %.1f | %.1f | %.1f | %s |\n", k, r, t, rps, p50/1000, p99/1000, rss/1024, disk/1024, la }')
    echo "$row" >>"$OUT.tmp"
    bench_log "$row"
  done
  stop_node "$kind"
done
mv "$OUT.tmp" "$OUT"
cat "$OUT"
bench_log "wrote $OUT"
