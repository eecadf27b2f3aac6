"""Fixtures that run the real labnode binary on free loopback ports and real clients against it.

LABNODE_BIN names the labnode binary and LABNODE_BAO the OpenBao CLI (scripts/test.sh sets
both). A missing binary is an error, never a silent skip.
"""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import hvac
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def _find(env, candidates, what):
    path = os.environ.get(env)
    if path:
        if not Path(path).is_file():
            raise RuntimeError(f"{env}={path} does not exist")
        return path
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    raise RuntimeError(f"{what} not found: set {env} (scripts/test.sh does)")


@pytest.fixture(scope="session")
def labnode_bin():
    target = os.environ.get("CARGO_TARGET_DIR", REPO / "target")
    return _find("LABNODE_BIN", [Path(target) / "debug" / "labnode"], "labnode binary")


@pytest.fixture(scope="session")
def bao_bin():
    return _find("LABNODE_BAO", [REPO / ".venv" / "bin" / "bao", shutil.which("bao")], "bao CLI")


# The Rust tests' port policy (crates/testkit/src/ports.rs): ports 10000-19999, each claimed by
# an flock on a file per port in the same directory, held until this process exits.
TEST_PORTS = range(10_000, 20_000)
_held_port_locks = []


def free_port():
    lock_dir = Path(tempfile.gettempdir()) / "labnode-test-ports"
    lock_dir.mkdir(exist_ok=True)
    start = (os.getpid() ^ time.time_ns()) % len(TEST_PORTS)
    for i in range(len(TEST_PORTS)):
        port = TEST_PORTS[(start + i) % len(TEST_PORTS)]
        lock = open(lock_dir / str(port), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            lock.close()
            continue
        _held_port_locks.append(lock)
        return port
    raise RuntimeError(f"no free port in {TEST_PORTS}")


class Node:
    """One labnode process with raft storage under a temporary directory."""

    def __init__(self, binary, bao, home):
        self.binary = binary
        self.bao_path = bao
        self.home = home
        self.api_port = free_port()
        self.cluster_port = free_port()
        while self.cluster_port == self.api_port:
            self.cluster_port = free_port()
        self.addr = f"http://127.0.0.1:{self.api_port}"
        self.config = home / "node.hcl"
        self.config.write_text(
            f'storage "raft" {{\n  path    = "{home / "data"}"\n  node_id = "node1"\n}}\n\n'
            f'listener "tcp" {{\n  address         = "127.0.0.1:{self.api_port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable     = true\n}}\n\n'
            f'api_addr      = "{self.addr}"\ncluster_addr  = "http://127.0.0.1:{self.cluster_port}"\n'
            "disable_mlock = true\n"
        )
        self.log = home / "server.log"
        self.proc = None
        self.root = None
        self.keys = []

    def start(self):
        """Starts the process and waits until *this* process listens (its log says so) and
        answers /v1/sys/health; other tests on the machine may grab a port we picked."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "server", f"-config={self.config}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "HOME": str(self.home), "NO_COLOR": "1"},
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"labnode did not start; log:\n{self.log.read_text()}")
            with open(self.log, "rb") as f:
                f.seek(offset)
                listening = b"API listener started" in f.read()
            if listening:
                try:
                    requests.get(f"{self.addr}/v1/sys/health", timeout=2)
                    return
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def wait_active(self):
        deadline = time.monotonic() + 30
        while requests.get(f"{self.addr}/v1/sys/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"node not active; log:\n{self.log.read_text()}"
            time.sleep(0.1)

    def init(self, shares=1, threshold=1):
        r = requests.put(
            f"{self.addr}/v1/sys/init",
            json={"secret_shares": shares, "secret_threshold": threshold},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        self.keys = r.json()["keys"]
        self.root = r.json()["root_token"]
        return self.keys, self.root

    def unseal(self, keys=None):
        for key in keys if keys is not None else self.keys:
            r = requests.put(f"{self.addr}/v1/sys/unseal", json={"key": key}, timeout=30)
            assert r.status_code == 200, r.text
            if not r.json()["sealed"]:
                self.wait_active()
                return
        raise AssertionError("still sealed")

    def client(self, token=None):
        return hvac.Client(url=self.addr, token=token if token is not None else self.root)

    def http(self, method, path, token=None, json=None, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["X-Vault-Token"] = token
        return requests.request(method, f"{self.addr}/v1/{path}", json=json, headers=h, timeout=30)

    def _run(self, binary, args, token, check, stdin):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update({"VAULT_ADDR": self.addr, "BAO_ADDR": self.addr, "HOME": str(self.home)})
        tok = self.root if token is None else token
        if tok:
            env["VAULT_TOKEN"] = tok
            env["BAO_TOKEN"] = tok
        p = subprocess.run(
            [binary, *args],
            env=env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert p.returncode == 0, f"{args} exited {p.returncode}: {p.stdout}{p.stderr}"
        return p

    def bao(self, *args, token=None, check=True, stdin=None):
        """Runs the real OpenBao CLI; token None = root, "" = no token."""
        return self._run(self.bao_path, args, token, check, stdin)

    def labnode(self, *args, token=None, check=True, stdin=None):
        """Runs the labnode CLI; token None = root, "" = no token."""
        return self._run(self.binary, args, token, check, stdin)


@pytest.fixture
def node(labnode_bin, bao_bin, tmp_path):
    """A started, uninitialized node; killed after the test."""
    n = Node(labnode_bin, bao_bin, tmp_path)
    n.start()
    yield n
    n.stop()


@pytest.fixture
def vault(node):
    """An initialized (1 share), unsealed node with `secret/` (kv-v2) and `kv/` (kv v1)."""
    node.init()
    node.unseal()
    c = node.client()
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    return node
