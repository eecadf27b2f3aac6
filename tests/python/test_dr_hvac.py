"""DR replication driven by hvac (generic write/read, health) between two labnode nodes."""

import time

import hvac
import pytest

from conftest import Node


DISABLED = "path disabled in replication DR secondary mode"


@pytest.fixture
def secondary(labnode_bin, bao_bin, tmp_path_factory):
    n = Node(labnode_bin, bao_bin, tmp_path_factory.mktemp("secondary"))
    n.start()
    n.init()
    n.unseal()
    yield n
    n.stop()


def wait_for(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_dr_pair_with_hvac(vault, secondary):
    a = vault.client()
    r = a.write("sys/replication/dr/primary/enable")
    assert r["warnings"] == [
        "This cluster is being enabled as a primary for replication. Vault will be unavailable "
        "for a brief period and will resume service shortly."
    ]
    wrapped = a.write("sys/replication/dr/primary/secondary-token", id="hvac")
    token = wrapped["wrap_info"]["token"]
    assert token.count(".") == 2 and token.startswith("eyJ")
    assert wrapped["wrap_info"]["creation_path"] == "sys/replication/dr/primary/secondary-token"
    assert wrapped["wrap_info"]["ttl"] == 1800

    b = secondary.client()
    b.write("sys/replication/dr/secondary/enable", token=token)
    a.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"})
    last_wal = a.read("sys/replication/dr/status")["data"]["last_wal"]
    st = wait_for(
        lambda: (
            lambda d: d if d["state"] == "stream-wals" and d["last_remote_wal"] >= last_wal else None
        )(hvac.Client(url=secondary.addr).read("sys/replication/dr/status")["data"]),
        "secondary catches up",
    )
    assert st["mode"] == "secondary" and st["secondary_id"] == "hvac"

    health = hvac.Client(url=secondary.addr).sys.read_health_status(method="GET")
    assert health.status_code == 472
    assert health.json()["replication_dr_mode"] == "secondary"

    # The primary's root token, on the secondary: refused like every client path.
    on_b = hvac.Client(url=secondary.addr, token=vault.root)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        on_b.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)
    assert e.value.errors == [DISABLED]

    # A primary cannot become a secondary.
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        a.write("sys/replication/dr/secondary/enable", token=token)
    assert e.value.errors == ["this cluster is a DR primary; it cannot become a secondary"]
