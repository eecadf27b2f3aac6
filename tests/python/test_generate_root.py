"""Generate a new root token from a 3-of-5 Shamir quorum: hvac (Vault's unauthenticated
sys/generate-root/*), the bao CLI (authenticated sys/generate-root-token/*), and decoding with
both the labnode CLI and bao."""

import json

import hvac
import pytest
from hvac import exceptions


@pytest.fixture
def shamir(node):
    node.init(shares=5, threshold=3)
    node.unseal(node.keys[:3])
    return node


def assert_is_root(node, token):
    r = node.http("GET", "auth/token/lookup-self", token=token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["policies"] == ["root"]
    assert data["orphan"] is True
    assert data["expire_time"] is None
    assert token != node.root


def test_generate_root_with_hvac_decoded_by_labnode_cli(shamir):
    c = hvac.Client(url=shamir.addr)
    start = c.sys.start_root_token_generation()
    otp, nonce = start["otp"], start["nonce"]
    assert start["started"] is True
    assert (start["progress"], start["required"]) == (0, 3)
    assert len(otp) == start["otp_length"] > 0

    with pytest.raises(exceptions.InvalidRequest, match="incorrect nonce supplied"):
        c.sys.generate_root(key=shamir.keys[0], nonce="00000000-0000-0000-0000-000000000000")
    status = c.sys.read_root_generation_progress()
    assert (status["progress"], status["nonce"]) == (0, nonce)

    assert c.sys.generate_root(key=shamir.keys[0], nonce=nonce)["progress"] == 1
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.generate_root(key=shamir.keys[0], nonce=nonce)
    assert c.sys.read_root_generation_progress()["progress"] == 1
    assert c.sys.generate_root(key=shamir.keys[3], nonce=nonce)["complete"] is False
    done = c.sys.generate_root(key=shamir.keys[4], nonce=nonce)
    assert done["complete"] is True
    encoded = done["encoded_token"]
    assert encoded == done["encoded_root_token"]

    token = shamir.labnode("operator", "generate-root", f"-decode={encoded}", f"-otp={otp}", token="").stdout
    assert token.startswith("hvs.")
    assert_is_root(shamir, token)
    assert c.sys.read_root_generation_progress()["started"] is False


def test_generate_root_with_bao_cli(shamir):
    start = json.loads(shamir.bao("operator", "generate-root", "-init", "-format=json").stdout)
    otp, nonce = start["otp"], start["nonce"]
    assert start["required"] == 3
    assert len(otp) == start["otp_length"]

    wrong = shamir.bao("operator", "generate-root", "-nonce=not-the-nonce", shamir.keys[0], check=False)
    assert wrong.returncode == 2
    assert "incorrect nonce supplied" in wrong.stderr
    status = json.loads(shamir.bao("operator", "generate-root", "-status", "-format=json").stdout)
    assert (status["progress"], status["nonce"]) == (0, nonce)

    for i, key in enumerate(shamir.keys[1:4], start=1):
        out = json.loads(
            shamir.bao("operator", "generate-root", f"-nonce={nonce}", "-format=json", key).stdout
        )
        assert out["complete"] is (i == 3)
        if i < 3:
            assert out["progress"] == i
    encoded = out["encoded_token"]

    token = shamir.bao("operator", "generate-root", f"-decode={encoded}", f"-otp={otp}").stdout.strip()
    assert_is_root(shamir, token)
    again = shamir.labnode("operator", "generate-root", f"-decode={encoded}", f"-otp={otp}", token="").stdout
    assert again == token


def test_generate_root_token_path_needs_a_token(shamir):
    r = shamir.http("PUT", "sys/generate-root-token/attempt", json={})
    assert (r.status_code, r.json()) == (403, {"errors": ["permission denied"]})
    r = shamir.http("GET", "sys/generate-root/attempt")
    assert r.status_code == 200
    assert (r.json()["started"], r.json()["nonce"]) == (False, "")
