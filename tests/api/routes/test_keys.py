from __future__ import annotations

import httpx

from tests.fixtures.auth import Secured


def test_who_am_i_names_the_key_sent(secured: Secured) -> None:
    with secured.client(secured.keys["reader"]) as reader:
        me = reader.get("/api/keys/me")
    assert me.status_code == 200
    assert me.json() == {"key_id": secured.keys["reader"].split("_")[1], "name": "reader", "scopes": ["read"]}
    with secured.client() as anonymous:
        assert anonymous.get("/api/keys/me").status_code == 401


def test_with_keys_off_anyone_holds_every_scope(api: httpx.Client) -> None:
    assert api.get("/api/keys/me").json() == {
        "key_id": None, "name": "anyone (AUTH_ENABLED=false)", "scopes": ["predict", "read", "admin"]
    }  # fmt: skip
