#!/usr/bin/env bash
# bench/gdb-sample.sh PID [SAMPLES=20] [INTERVAL_S=0.3]: a poor man's profiler (perf is not
# available on these machines). Attaches gdb SAMPLES times, takes every thread's stack, drops
# idle threads (parked workers, epoll, blocking-pool waits) and prints, per function, in how many
# busy stacks it appeared (inclusive). Release builds keep symbol names, which is enough here.
# Each attach stops the process for ~0.1-0.5 s, so run it during load, not while measuring.
set -euo pipefail
pid=$1
n=${2:-20}
interval=${3:-0.3}
command -v gdb >/dev/null || { echo "gdb not found" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for ((i = 0; i < n; i++)); do
  kill -0 "$pid" 2>/dev/null || break
  timeout -s INT 30 gdb -p "$pid" -batch -ex 'set pagination off' -ex 'thread apply all bt 40' \
    2>/dev/null >>"$tmp" || true
  echo "=== END SAMPLE" >>"$tmp"
  sleep "$interval"
done
awk '
  function flush() {
    if (nframes > 0 && !idle) {
      busy++
      delete seen
      for (i = 1; i <= nframes; i++) if (!(frames[i] in seen)) { seen[frames[i]] = 1; count[frames[i]]++ }
      if (nframes > 0) top[frames[1]]++
    }
    nframes = 0; idle = 0
  }
  /^Thread / || /^=== END SAMPLE/ { flush(); next }
  /^#[0-9]+ / {
    line = $0
    sub(/^#[0-9]+ +(0x[0-9a-f]+ in )?/, "", line)
    sub(/ \(.*$/, "", line)
    gsub(/::h[0-9a-f]+$/, "", line)
    gsub(/\[[0-9a-f]+\]/, "", line)
    if (line ~ /park_internal|epoll_wait|Condvar::wait|pool::Inner::run.*wait|do_epoll/) idle = 1
    if (line ~ /Poll::poll/ && nframes == 1) idle = 1
    frames[++nframes] = line
  }
  END {
    flush()
    printf "busy thread-stacks: %d\n\n-- innermost frame (self) --\n", busy
    for (f in top) printf "%5d  %s\n", top[f], f | "sort -rn | head -15"
    close("sort -rn | head -15")
    printf "\n-- inclusive (labnode / redb / openraft / serde / tokio-io frames) --\n"
    for (f in count) if (f ~ /labnode|redb|openraft|serde|hyper|axum|aes|sha2|postcard/) printf "%5d  %s\n", count[f], f | "sort -rn | head -40"
  }
' "$tmp"
