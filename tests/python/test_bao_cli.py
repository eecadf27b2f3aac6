"""The real OpenBao CLI (`bao`, vault-compatible) drives labnode through VAULT_ADDR/VAULT_TOKEN."""

import json


def test_status_and_secrets_enable(vault):
    out = vault.bao("status", "-format=json").stdout
    status = json.loads(out)
    assert (status["initialized"], status["sealed"], status["storage_type"]) == (True, False, "raft")

    assert vault.bao("secrets", "enable", "-path=apps", "kv-v2").stdout == (
        "Success! Enabled the kv-v2 secrets engine at: apps/\n"
    )
    mounts = json.loads(vault.bao("secrets", "list", "-format=json").stdout)
    assert mounts["apps/"]["type"] == "kv"
    assert mounts["apps/"]["options"] == {"version": "2"}
    dup = vault.bao("secrets", "enable", "-path=apps", "kv", check=False)
    assert dup.returncode == 2
    assert "path is already in use at apps/" in dup.stderr


def test_kv_put_get_list(vault):
    vault.bao("kv", "put", "secret/app/db", "user=alice", "password=s3cret")
    vault.bao("kv", "put", "secret/app/cache", "url=redis://")
    assert vault.bao("kv", "get", "-field=password", "secret/app/db").stdout == "s3cret"
    got = json.loads(vault.bao("kv", "get", "-format=json", "secret/app/db").stdout)
    assert got["data"]["data"] == {"user": "alice", "password": "s3cret"}
    assert got["data"]["metadata"]["version"] == 1
    assert vault.bao("kv", "list", "secret/app").stdout == "Keys\n----\ncache\ndb\n"
    missing = vault.bao("kv", "get", "secret/app/nope", check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "No value found at secret/data/app/nope"


def test_write_read_kv_v1(vault):
    assert vault.bao("write", "kv/team/db", "conn=postgres://db").stdout == "Success! Data written to: kv/team/db\n"
    assert vault.bao("read", "-field=conn", "kv/team/db").stdout == "postgres://db"
    assert vault.bao("list", "kv/team").stdout == "Keys\n----\ndb\n"
    assert vault.bao("delete", "kv/team/db").stdout == "Success! Data deleted (if it existed) at: kv/team/db\n"
    assert vault.bao("read", "kv/team/db", check=False).returncode == 2


def test_policy_and_token_lifecycle(vault, tmp_path):
    policy = tmp_path / "reader.hcl"
    policy.write_text('path "secret/data/*" {\n  capabilities = ["read"]\n}\n')
    assert vault.bao("policy", "write", "reader", str(policy)).stdout == "Success! Uploaded policy: reader\n"
    assert vault.bao("policy", "read", "reader").stdout == policy.read_text()
    assert "reader" in vault.bao("policy", "list").stdout.split()

    created = json.loads(vault.bao("token", "create", "-policy=reader", "-ttl=1h", "-format=json").stdout)
    token = created["auth"]["client_token"]
    assert created["auth"]["policies"] == ["default", "reader"]
    assert created["auth"]["lease_duration"] == 3600

    looked = json.loads(vault.bao("token", "lookup", "-format=json", token).stdout)["data"]
    assert looked["policies"] == ["default", "reader"]
    assert looked["id"] == token
    assert 3590 <= looked["ttl"] <= 3600

    vault.bao("kv", "put", "secret/app", "k=v")
    assert vault.bao("kv", "get", "-field=k", "secret/app", token=token).stdout == "v"
    denied = vault.bao("kv", "put", "secret/app", "k=w", token=token, check=False)
    assert denied.returncode == 2
    assert "permission denied" in denied.stderr

    assert vault.bao("token", "revoke", token).stdout == "Success! Revoked token (if it existed)\n"
    after = vault.bao("token", "lookup", token, check=False)
    assert after.returncode == 2
    refused = vault.bao("kv", "get", "secret/app", token=token, check=False)
    assert refused.returncode == 2
    assert "permission denied" in refused.stderr


def test_labnode_and_bao_read_each_others_writes(vault):
    vault.labnode("kv", "put", "secret/shared", "from=labnode")
    assert vault.bao("kv", "get", "-field=from", "secret/shared").stdout == "labnode"
    vault.bao("kv", "put", "secret/shared", "from=bao")
    assert vault.labnode("kv", "get", "-field=from", "secret/shared").stdout == "bao"
    assert vault.labnode("kv", "get", "-version=1", "-field=from", "secret/shared").stdout == "labnode"
