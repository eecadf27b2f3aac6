"""hvac (the Python Vault client) drives labnode unchanged: init, unseal, KV v2 and KV v1."""

import hvac
import pytest
from hvac import exceptions


@pytest.mark.xfail(
    strict=True,
    reason="bug: PUT sys/init with \"root_token_pgp_key\":null (hvac's default body) -> 400 "
    "'failed to parse JSON input: invalid type: null, expected a string'; Vault treats null as unset",
)
def test_hvac_initialize_with_default_arguments(node):
    c = hvac.Client(url=node.addr)
    result = c.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(result["keys"]) == 5


def test_init_and_unseal_through_hvac(node):
    c = hvac.Client(url=node.addr)
    assert c.sys.is_initialized() is False
    # root_token_pgp_key="" works around the null-field bug tested above.
    result = c.sys.initialize(secret_shares=5, secret_threshold=3, root_token_pgp_key="")
    assert len(result["keys"]) == 5
    assert len(result["keys_base64"]) == 5
    assert c.sys.is_initialized() is True
    assert c.sys.is_sealed() is True

    status = c.sys.submit_unseal_key(result["keys"][0])
    assert (status["sealed"], status["progress"], status["t"], status["n"]) == (True, 1, 3, 5)
    status = c.sys.submit_unseal_keys(result["keys_base64"][1:3])
    assert status["sealed"] is False
    node.wait_active()
    c.token = result["root_token"]
    assert c.is_authenticated() is True
    assert c.auth.token.lookup_self()["data"]["policies"] == ["root"]
    with pytest.raises(exceptions.InvalidRequest, match="already initialized"):
        c.sys.initialize(secret_shares=5, secret_threshold=3, root_token_pgp_key="")


def test_kv_v2_lifecycle(vault):
    kv = vault.client().secrets.kv.v2
    r = kv.create_or_update_secret("app/db", secret={"user": "alice", "password": "pw-1"})
    assert r["data"]["version"] == 1
    assert kv.create_or_update_secret("app/db", secret={"user": "alice", "password": "pw-2"})["data"][
        "version"
    ] == 2
    kv.create_or_update_secret("app/cache", secret={"url": "redis://"})

    latest = kv.read_secret_version("app/db", raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"user": "alice", "password": "pw-2"}
    assert latest["data"]["metadata"]["version"] == 2
    v1 = kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)
    assert v1["data"]["data"]["password"] == "pw-1"
    assert kv.list_secrets("app")["data"]["keys"] == ["cache", "db"]
    assert kv.list_secrets("")["data"]["keys"] == ["app/"]

    with pytest.raises(exceptions.InvalidRequest, match="check-and-set parameter did not match"):
        kv.create_or_update_secret("app/db", secret={"x": "y"}, cas=1)

    kv.delete_latest_version_of_secret("app/db")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version("app/db", raise_on_deleted_version=True)
    deleted = kv.read_secret_version("app/db", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None
    assert deleted["data"]["metadata"]["deletion_time"] != ""

    kv.undelete_secret_versions("app/db", versions=[2])
    assert kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"]["password"] == "pw-2"

    kv.destroy_secret_versions("app/db", versions=[1])
    meta = kv.read_secret_metadata("app/db")["data"]
    assert meta["current_version"] == 2
    assert meta["versions"]["1"]["destroyed"] is True
    assert meta["versions"]["2"]["destroyed"] is False
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)

    kv.update_metadata("app/db", max_versions=5, custom_metadata={"owner": "team-a"})
    meta = kv.read_secret_metadata("app/db")["data"]
    assert meta["max_versions"] == 5
    assert meta["custom_metadata"] == {"owner": "team-a"}

    kv.delete_metadata_and_all_versions("app/db")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata("app/db")
    assert kv.list_secrets("app")["data"]["keys"] == ["cache"]


def test_kv_v1(vault):
    kv = vault.client().secrets.kv.v1
    kv.create_or_update_secret("team/db", secret={"conn": "postgres://db"}, mount_point="kv")
    kv.create_or_update_secret("team/cache", secret={"conn": "redis://"}, mount_point="kv")
    r = kv.read_secret("team/db", mount_point="kv")
    assert r["data"] == {"conn": "postgres://db"}
    assert kv.list_secrets("team", mount_point="kv")["data"]["keys"] == ["cache", "db"]
    kv.delete_secret("team/db", mount_point="kv")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret("team/db", mount_point="kv")
    assert kv.list_secrets("team", mount_point="kv")["data"]["keys"] == ["cache"]


def test_wrong_token_is_forbidden(vault):
    c = vault.client(token="hvs.XXXXXXXXXXXXXXXXXXXXXXXX")
    assert c.is_authenticated() is False
    with pytest.raises(exceptions.Forbidden):
        c.secrets.kv.v1.read_secret("team/db", mount_point="kv")
