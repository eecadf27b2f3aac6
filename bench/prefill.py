#!/usr/bin/env python3
"""Write N KV v2 secrets bench/pre-0 .. bench/pre-(N-1) for the read benchmark.

usage: prefill.py ADDR TOKEN N [THREADS]
Standard library only; keep-alive connections, a few threads. Exits non-zero on any non-2xx.
"""
import http.client
import json
import sys
import threading
import urllib.parse

addr, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
nthreads = int(sys.argv[4]) if len(sys.argv) > 4 else 8
u = urllib.parse.urlparse(addr)
body = json.dumps({"data": {"username": "bench-user", "password": "x" * 32,
                            "note": "labnode vs openbao"}})
errors = []


def worker(tid):
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(tid, n, nthreads):
        conn.request("POST", f"/v1/secret/data/bench/pre-{i}", body=body,
                     headers={"X-Vault-Token": token, "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if not 200 <= r.status < 300:
            errors.append(f"pre-{i}: {r.status} {data[:200]!r}")
            return
    conn.close()


ts = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if errors:
    print("prefill failed:", *errors[:3], sep="\n  ", file=sys.stderr)
    sys.exit(1)
