from __future__ import annotations

import httpx
import pytest

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


def test_an_admin_key_makes_lists_and_revokes_keys(secured: Secured) -> None:
    with secured.client(secured.keys["all"]) as admin:
        made = admin.post("/api/keys", json={"name": "traffic desk", "scopes": ["read", "predict"]})
        assert made.status_code == 201, made.text
        new = made.json()
        assert new["name"] == "traffic desk" and new["scopes"] == ["predict", "read"] and new["revoked_at"] is None
        assert new["key"].split("_")[1] == new["key_id"]
        with secured.client(new["key"]) as desk:
            assert desk.get("/api/keys/me").json()["scopes"] == ["predict", "read"]
            listed = {k["key_id"]: k for k in admin.get("/api/keys").json()}
            assert listed[new["key_id"]] == {k: v for k, v in new.items() if k != "key"}
            assert {"predictor", "reader", "all"} <= {k["name"] for k in listed.values()}
            assert not any(new["key"] in str(k) for k in listed.values())  # the key itself is shown once only
            assert admin.delete(f"/api/keys/{new['key_id']}").status_code == 204
            assert desk.get("/api/keys/me").status_code == 401
        again = admin.delete(f"/api/keys/{new['key_id']}")
        assert again.status_code == 404 and "no active API key" in again.json()["error"]["message"]
        revoked = next(k for k in admin.get("/api/keys").json() if k["key_id"] == new["key_id"])
        assert revoked["revoked_at"] is not None


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "x", "scopes": ["root"]}, {"scopes.0"}),
        ({"name": "", "scopes": []}, {"name", "scopes"}),
        ({"name": "a\nb"}, {"name"}),
        ({"name": "x" * 101, "owner": "me"}, {"name", "owner"}),
    ],
)
def test_a_bad_key_request_names_each_field(secured: Secured, body: dict, fields: set[str]) -> None:
    with secured.client(secured.keys["all"]) as admin:
        refused = admin.post("/api/keys", json=body)
        assert refused.status_code == 422
        assert {d["field"] for d in refused.json()["error"]["details"]} == fields
        assert admin.delete("/api/keys/not-a-key-id").status_code == 422


def test_only_an_admin_key_manages_keys(secured: Secured) -> None:
    for holder in (None, "predictor", "reader"):
        with secured.client(secured.keys[holder] if holder else None) as client:
            answers = [client.post("/api/keys", json={"name": "mine", "scopes": ["admin"]}), client.get("/api/keys"),
                       client.delete(f"/api/keys/{secured.keys['other'].split('_')[1]}")]  # fmt: skip
        assert {a.status_code for a in answers} == {401 if holder is None else 403}, holder
    with secured.client(secured.keys["other"]) as other:
        assert other.get("/api/keys/me").status_code == 200


def test_with_keys_off_no_key_is_made_over_http(api: httpx.Client) -> None:
    refused = api.post("/api/keys", json={"name": "sneaky", "scopes": ["admin"]})
    assert refused.status_code == 403 and "AUTH_ENABLED=true" in refused.json()["error"]["message"]
    assert api.get("/api/keys").status_code == 403
