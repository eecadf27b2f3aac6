#!/usr/bin/env bash
# Measures DR replication lag between two single-node labnode clusters on loopback.
#
#   scripts/dr-lag.sh                  # 200 and 1000 writes/s, 5 s each
#   RATES="200 1000 2000" SECONDS_PER_RATE=10 scripts/dr-lag.sh
#
# For each rate a paced writer (threads, KV v2 writes of ~40 bytes) runs on the primary while
#   - a sampler reads the primary's last_wal and then the secondary's last_remote_wal every
#     50 ms: lag = last_wal - last_remote_wal (WAL entries; an upper bound, read in that order);
#   - every 200 ms a marker is written, the primary's last_wal is read right after the write's
#     acknowledgement, and the secondary's dr/status is polled (every 2 ms) until
#     last_remote_wal >= that index: the marker's visibility time.
# Then the secondary is promoted (DR operation token via the OTP flow with the primary's key)
# and the time from the promote request to the first acknowledged write on it is measured.
#
# Environment: LABNODE_BIN (default: release build, else debug, in CARGO_TARGET_DIR or target/),
# PYTHON (default: python of LABNODE_VENV or .venv, else python3; needs `requests`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="${LABNODE_BIN:-}"
if [ -z "$bin" ]; then
  for b in "$target/release/labnode" "$target/debug/labnode"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
fi
[ -x "${bin:-}" ] || { echo "labnode binary not found: build it or set LABNODE_BIN" >&2; exit 1; }
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for p in "${LABNODE_VENV:-.venv}/bin/python" python3; do
    if command -v "$p" >/dev/null 2>&1; then py="$p"; break; fi
  done
fi
export LABNODE_BIN="$bin" RATES="${RATES:-200 1000}" SECONDS_PER_RATE="${SECONDS_PER_RATE:-5}"
exec "$py" - <<'PY'
import base64, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import requests

BIN = os.environ["LABNODE_BIN"]
RATES = [int(r) for r in os.environ["RATES"].split()]
DURATION = float(os.environ["SECONDS_PER_RATE"])

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Node:
    def __init__(self, name, root):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.api, self.cluster = free_port(), free_port()
        self.addr = f"http://127.0.0.1:{self.api}"
        with open(os.path.join(self.dir, "node.hcl"), "w") as f:
            f.write(f'storage "raft" {{\n  path = "{self.dir}/data"\n  node_id = "{name}"\n}}\n'
                    f'listener "tcp" {{\n  address = "127.0.0.1:{self.api}"\n'
                    f'  cluster_address = "127.0.0.1:{self.cluster}"\n  tls_disable = true\n}}\n'
                    f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{self.cluster}"\n'
                    'disable_mlock = true\n')
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen([BIN, "server", f"-config={self.dir}/node.hcl"],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.s = requests.Session()
        self.token = None
        deadline = time.time() + 30
        while True:
            try:
                self.s.get(f"{self.addr}/v1/sys/health", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline or self.proc.poll() is not None:
                    sys.exit(f"{name} did not start; see {self.dir}/server.log")
                time.sleep(0.05)

    def req(self, method, path, body=None, token=True, session=None):
        h = {"X-Vault-Token": self.token} if token and self.token else {}
        return (session or self.s).request(method, f"{self.addr}/v1/{path}", json=body, headers=h, timeout=10)

    def ok(self, method, path, body=None, token=True):
        r = self.req(method, path, body, token)
        if r.status_code >= 300:
            sys.exit(f"{method} {path} on {self.addr}: {r.status_code} {r.text}")
        return r.json() if r.text else None

    def init(self):
        j = self.ok("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=False)
        self.key, self.token = j["keys"][0], j["root_token"]
        self.ok("PUT", "sys/unseal", {"key": self.key}, token=False)
        self.wait(lambda: self.req("GET", "sys/health", token=False).status_code == 200, "active")

    def wait(self, cond, what, timeout=30):
        deadline = time.time() + timeout
        while not cond():
            if time.time() > deadline:
                sys.exit(f"{self.addr}: not {what} after {timeout}s")
            time.sleep(0.02)

    def dr(self, session=None):
        return self.req("GET", "sys/replication/dr/status", token=False, session=session).json()["data"]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")

def run_rate(a, b, rate):
    stop = threading.Event()
    sent = [0]
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter()
    workers = max(2, min(32, rate // 50))

    def writer(w):
        s = requests.Session()
        n = w
        while not stop.is_set():
            due = start + n / rate  # global pacing: write n is due at n/rate seconds
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            r = a.req("PUT", f"secret/data/load/{n % 1000}", {"data": {"n": n, "pad": "x" * 24}}, session=s)
            with lock:
                sent[0] += 1
                if r.status_code != 200:
                    errors[0] += 1
            n += workers

    lags, marks = [], []

    def sampler():
        sa, sb = requests.Session(), requests.Session()
        while not stop.is_set():
            lw = a.dr(sa)["last_wal"]
            rw = b.dr(sb)["last_remote_wal"]
            lags.append(max(0, lw - rw))
            time.sleep(0.05)

    def marker():
        sa, sb = requests.Session(), requests.Session()
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            a.req("PUT", f"secret/data/marker/{i % 100}", {"data": {"i": i}}, session=sa)
            target = a.dr(sa)["last_wal"]
            while b.dr(sb)["last_remote_wal"] < target:
                time.sleep(0.002)
            marks.append((time.perf_counter() - t0) * 1000)
            i += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(workers)]
    threads += [threading.Thread(target=sampler), threading.Thread(target=marker)]
    for t in threads:
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join()
    achieved = sent[0] / (time.perf_counter() - start)
    return dict(rate=rate, achieved=achieved, errors=errors[0], lags=lags, marks=marks)

root = tempfile.mkdtemp(prefix="dr-lag-")
nodes = []
try:
    a = Node("primary", root); nodes.append(a)
    b = Node("secondary", root); nodes.append(b)
    a.init(); b.init()
    a.ok("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    a.ok("PUT", "sys/replication/dr/primary/enable", {})
    tok = a.ok("PUT", "sys/replication/dr/primary/secondary-token", {"id": "lag"})["wrap_info"]["token"]
    b.ok("PUT", "sys/replication/dr/secondary/enable", {"token": tok})
    b.wait(lambda: b.dr()["state"] == "stream-wals", "streaming")

    results = [run_rate(a, b, r) for r in RATES]

    # Promote: DR operation token with the primary's key, then time to the first write.
    gen = "sys/replication/dr/secondary/generate-operation-token"
    att = b.ok("PUT", f"{gen}/attempt", {}, token=False)
    upd = b.ok("PUT", f"{gen}/update", {"key": a.key, "nonce": att["nonce"]}, token=False)
    enc = upd["encoded_token"]
    raw = base64.b64decode(enc + "=" * (-len(enc) % 4))
    drtok = bytes(x ^ y for x, y in zip(raw, att["otp"].encode())).decode()
    b.token = a.token  # the primary's root token is valid on the promoted cluster
    t0 = time.perf_counter()
    b.ok("PUT", "sys/replication/dr/secondary/promote", {"dr_operation_token": drtok}, token=False)
    t_promoted = time.perf_counter()
    while b.req("PUT", "secret/data/after-promote", {"data": {"ok": True}}).status_code != 200:
        time.sleep(0.001)
    t_write = time.perf_counter()

    version = subprocess.run([BIN, "version"], capture_output=True, text=True).stdout.strip()
    print(f"\nDR replication lag, {version} ({BIN}), {os.cpu_count()} CPUs, loopback, "
          f"{DURATION:g} s per rate, single-node primary and secondary\n")
    print("| target writes/s | achieved writes/s | write errors | lag samples | lag p50 / p95 / max (WAL entries) | marker visible on secondary p50 / p95 / max (ms) |")
    print("|---:|---:|---:|---:|---|---|")
    for r in results:
        L, M = r["lags"], r["marks"]
        print(f"| {r['rate']} | {r['achieved']:.0f} | {r['errors']} | {len(L)} | "
              f"{pct(L,50)} / {pct(L,95)} / {max(L) if L else 'n/a'} | "
              f"{pct(M,50):.1f} / {pct(M,95):.1f} / {max(M) if M else float('nan'):.1f} |")
    print(f"\npromote request answered in {(t_promoted - t0) * 1000:.1f} ms; "
          f"first acknowledged write on the promoted cluster {(t_write - t0) * 1000:.1f} ms after the promote request")
finally:
    for n in nodes:
        n.proc.send_signal(signal.SIGTERM)
    for n in nodes:
        try:
            n.proc.wait(10)
        except subprocess.TimeoutExpired:
            n.proc.kill()
    shutil.rmtree(root, ignore_errors=True)
PY
