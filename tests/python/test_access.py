"""Access control as a learner meets it (issue #3): limited tokens, sudo, TTLs, revocation
trees, wrapped secrets, batch tokens and policy errors — through hvac and the bao CLI."""

import json
import time

import pytest
from hvac import exceptions

APP_POLICY = """
path "secret/data/app/*" {
  capabilities = ["create", "read", "update", "list"]
}

path "secret/data/app/admin" {
  capabilities = ["deny"]
}

path "secret/metadata/app/*" {
  capabilities = ["list"]
}
"""


@pytest.fixture
def app_token(vault):
    root = vault.client()
    root.sys.create_or_update_acl_policy("app", APP_POLICY)
    kv = root.secrets.kv.v2
    kv.create_or_update_secret("app/db", secret={"password": "db-pw"})
    kv.create_or_update_secret("app/admin", secret={"password": "admin-pw"})
    kv.create_or_update_secret("other", secret={"password": "other-pw"})
    return root.auth.token.create(policies=["app"], ttl="1h")["auth"]["client_token"]


def test_policy_allows_app_and_denies_admin_via_hvac(vault, app_token):
    kv = vault.client(app_token).secrets.kv.v2
    assert kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"] == {
        "password": "db-pw"
    }
    with pytest.raises(exceptions.Forbidden):
        kv.read_secret_version("app/admin", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        kv.read_secret_version("other", raise_on_deleted_version=True)

    assert kv.create_or_update_secret("app/new", secret={"k": "v"})["data"]["version"] == 1
    with pytest.raises(exceptions.Forbidden):
        kv.create_or_update_secret("app/admin", secret={"password": "hijacked"})
    with pytest.raises(exceptions.Forbidden):
        kv.create_or_update_secret("elsewhere", secret={"k": "v"})
    with pytest.raises(exceptions.Forbidden):
        kv.delete_latest_version_of_secret("app/db")

    assert kv.list_secrets("app")["data"]["keys"] == ["admin", "db", "new"]
    with pytest.raises(exceptions.Forbidden):
        kv.list_secrets("")
    root = vault.client().secrets.kv.v2
    assert root.read_secret_version("app/admin", raise_on_deleted_version=True)["data"]["data"] == {
        "password": "admin-pw"
    }


def test_policy_allows_app_and_denies_admin_via_bao(vault, app_token):
    t = app_token
    assert vault.bao("kv", "get", "-field=password", "secret/app/db", token=t).stdout == "db-pw"
    for args in (
        ("kv", "get", "secret/app/admin"),
        ("kv", "get", "secret/other"),
        ("kv", "put", "secret/app/admin", "password=x"),
        ("kv", "list", "secret/"),
    ):
        p = vault.bao(*args, token=t, check=False)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "permission denied" in p.stderr, (args, p.stderr)
    vault.bao("kv", "put", "secret/app/bao", "k=v", token=t)
    assert vault.bao("kv", "list", "secret/app", token=t).stdout == "Keys\n----\nadmin\nbao\ndb\n"
    caps = vault.bao("token", "capabilities", t, "secret/data/app/admin").stdout.strip()
    assert caps == "deny"
    caps = vault.bao("token", "capabilities", t, "secret/data/app/db").stdout.strip()
    assert caps == "create, list, read, update"


def test_sudo_protected_path_needs_sudo(vault):
    root = vault.client()
    root.sys.create_or_update_acl_policy("rotator", 'path "sys/rotate" { capabilities = ["update"] }')
    root.sys.create_or_update_acl_policy(
        "rotator-sudo", 'path "sys/rotate" { capabilities = ["update", "sudo"] }'
    )
    plain = root.auth.token.create(policies=["rotator"])["auth"]["client_token"]
    sudo = root.auth.token.create(policies=["rotator-sudo"])["auth"]["client_token"]
    term = root.sys.get_encryption_key_status()["data"]["term"]

    r = vault.http("PUT", "sys/rotate", token=plain)
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    r = vault.http("PUT", "sys/rotate", token=sudo)
    assert r.status_code == 204, r.text
    assert root.sys.get_encryption_key_status()["data"]["term"] == term + 1

    r = vault.http("PUT", "sys/seal", token=sudo)
    assert r.status_code == 403, "sudo on sys/rotate grants nothing on sys/seal"
    assert vault.client().sys.is_sealed() is False


def test_token_past_its_ttl_is_refused(vault):
    token = vault.client().auth.token.create(policies=["default"], ttl="2s")["auth"]["client_token"]
    r = vault.http("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 200
    assert r.json()["data"]["ttl"] in (1, 2)
    time.sleep(3)
    r = vault.http("GET", "auth/token/lookup-self", token=token)
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    p = vault.bao("token", "lookup", token=token, check=False)
    assert p.returncode == 2
    assert "permission denied" in p.stderr


def test_revoking_a_parent_revokes_its_children(vault):
    root = vault.client()
    root.sys.create_or_update_acl_policy("creator", 'path "auth/token/create" { capabilities = ["update"] }')
    parent = root.auth.token.create(policies=["creator"])["auth"]["client_token"]
    child = vault.client(parent).auth.token.create(policies=["creator"])["auth"]["client_token"]
    grandchild = vault.client(child).auth.token.create(policies=["creator"])["auth"]["client_token"]
    sibling = root.auth.token.create(policies=["creator"])["auth"]["client_token"]
    assert vault.client(grandchild).is_authenticated()
    root.auth.token.revoke(parent)
    for t in (parent, child, grandchild):
        r = vault.http("GET", "auth/token/lookup-self", token=t)
        assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]}), t
    assert vault.http("GET", "auth/token/lookup-self", token=sibling).status_code == 200


WRAP_ERROR = {"errors": ["wrapping token is not valid or does not exist"]}


def test_wrapped_secret_unwraps_once_via_bao(vault):
    vault.bao("kv", "put", "secret/app/db", "password=wrapped-pw")
    out = json.loads(vault.bao("kv", "get", "-wrap-ttl=5m", "-format=json", "secret/app/db").stdout)
    info = out["wrap_info"]
    assert info["ttl"] == 300
    assert info["creation_path"] == "secret/data/app/db"
    wrapping_token = info["token"]

    first = json.loads(vault.bao("unwrap", "-format=json", wrapping_token, token="").stdout)
    assert first["data"]["data"] == {"password": "wrapped-pw"}
    second = vault.bao("unwrap", wrapping_token, token="", check=False)
    assert second.returncode == 2
    assert "wrapping token is not valid or does not exist" in second.stderr
    r = vault.http("PUT", "sys/wrapping/unwrap", token=wrapping_token)
    assert (r.status_code, r.json()) == (400, WRAP_ERROR)


def test_wrapped_secret_unwraps_once_via_hvac(vault):
    root = vault.client()
    root.secrets.kv.v1.create_or_update_secret("team/db", secret={"conn": "pg://"}, mount_point="kv")
    wrapped = root.read("kv/team/db", wrap_ttl="60s")
    assert wrapped["data"] is None
    token = wrapped["wrap_info"]["token"]
    lookup = vault.http("PUT", "sys/wrapping/lookup", json={"token": token})
    assert lookup.status_code == 200, lookup.text
    assert lookup.json()["data"]["creation_path"] == "kv/team/db"
    assert lookup.json()["data"]["creation_ttl"] == 60

    unwrapped = vault.client(token=token).sys.unwrap()
    assert unwrapped["data"] == {"conn": "pg://"}
    with pytest.raises(exceptions.InvalidRequest, match="wrapping token is not valid or does not exist"):
        vault.client(token=token).sys.unwrap()
    r = vault.http("PUT", "sys/wrapping/unwrap", token=vault.root, json={"token": token})
    assert (r.status_code, r.json()) == (400, WRAP_ERROR)


def test_wrapped_token_create(vault):
    r = vault.http(
        "POST",
        "auth/token/create",
        token=vault.root,
        json={"policies": ["default"], "ttl": "1h"},
        headers={"X-Vault-Wrap-TTL": "120"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["auth"] is None and body["data"] is None
    wrapped_accessor = body["wrap_info"]["wrapped_accessor"]
    unwrapped = vault.http("PUT", "sys/wrapping/unwrap", token=body["wrap_info"]["token"]).json()
    assert unwrapped["auth"]["accessor"] == wrapped_accessor
    new_token = unwrapped["auth"]["client_token"]
    assert vault.http("GET", "auth/token/lookup-self", token=new_token).status_code == 200


def test_batch_token_from_role(vault):
    root = vault.client()
    root.sys.create_or_update_acl_policy("reader", 'path "kv/*" { capabilities = ["read"] }')
    root.secrets.kv.v1.create_or_update_secret("team/db", secret={"conn": "pg://"}, mount_point="kv")
    # hvac 2.4's create_or_update_role has no token_type; write the role as `vault write` does.
    r = vault.http(
        "PUT",
        "auth/token/roles/batcher",
        token=vault.root,
        json={"allowed_policies": "reader", "orphan": "true", "renewable": "false", "token_type": "batch"},
    )
    assert r.status_code == 204, r.text
    role = root.auth.token.read_role("batcher")["data"]
    assert role["token_type"] == "batch"
    auth = root.auth.token.create(role_name="batcher", policies=["reader"])["auth"]
    batch = auth["client_token"]
    assert auth["token_type"] == "batch"
    assert auth["orphan"] is True
    assert auth["accessor"] == ""

    c = vault.client(batch)
    assert c.secrets.kv.v1.read_secret("team/db", mount_point="kv")["data"] == {"conn": "pg://"}
    with pytest.raises(exceptions.Forbidden):
        c.secrets.kv.v1.create_or_update_secret("team/db", secret={"conn": "x"}, mount_point="kv")
    with pytest.raises(exceptions.Forbidden):
        c.sys.list_mounted_secrets_engines()
    r = vault.http("POST", "auth/token/create", token=batch, json={"policies": ["reader"]})
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})

    r = vault.http("POST", "auth/token/revoke", token=vault.root, json={"token": batch})
    assert (r.status_code, r.json()) == (400, {"errors": ["batch tokens cannot be revoked"]})
    assert c.secrets.kv.v1.read_secret("team/db", mount_point="kv")["data"] == {"conn": "pg://"}

    denied = vault.http("POST", "auth/token/create/batcher", token=vault.root, json={"policies": ["root"]})
    assert denied.status_code == 400, denied.text


def test_malformed_policy_hcl_is_rejected_with_its_line(vault):
    bad = 'path "secret/*" {\n  capabilities = ["read"]\n}\n\npath "kv/*" {\n  capabilities = [\n}\n'
    r = vault.http("PUT", "sys/policies/acl/broken", token=vault.root, json={"policy": bad})
    assert r.status_code == 400, r.text
    msg = r.json()["errors"][0]
    assert msg.startswith("failed to parse policy"), msg
    assert "7" in msg or "6" in msg, f"message names the line: {msg}"
    assert vault.http("GET", "sys/policies/acl/broken", token=vault.root).status_code == 404


def test_unknown_capability_is_rejected(vault, tmp_path):
    r = vault.http(
        "PUT",
        "sys/policies/acl/bogus",
        token=vault.root,
        json={"policy": 'path "x" { capabilities = ["bogus"] }'},
    )
    assert (r.status_code, r.json()) == (
        400,
        {"errors": ['failed to parse policy: path "x": path "x": invalid capability "bogus"']},
    )
    f = tmp_path / "bogus.hcl"
    f.write_text('path "secret/*" {\n  capabilities = ["read", "fly"]\n}\n')
    p = vault.bao("policy", "write", "bogus", str(f), check=False)
    assert p.returncode == 2
    assert 'invalid capability "fly"' in p.stderr
