"""The dashboard against an API that needs keys: with a key of its own, and signing each visitor in; admin actions
ask for an admin key."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.auth import UNKNOWN_KEY, Secured, cli
from tests.fixtures.dashboard import APP, point_at
from tests.fixtures.datasets import dacon_file, upload
from tests.fixtures.stack import Stack


@pytest.fixture
def keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dashboard without a key of its own."""
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.delenv("API_KEY_FILE", raising=False)


def test_the_dashboard_works_with_its_key(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", secured.keys["all"])
    point_at(monkeypatch, secured.url)
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()  # the first page: Predict
    assert not app.exception and not app.error, [e.value for e in app.error]
    app.button[0].click().run()
    assert not app.error, [e.value for e in app.error]
    assert float(app.metric[0].value) > 0

    monkeypatch.setenv("API_KEY", UNKNOWN_KEY)
    point_at(monkeypatch, secured.url)
    refused = AppTest.from_file(APP, default_timeout=60)
    refused.run()
    assert any("refused the dashboard's key" in e.value for e in refused.error), [e.value for e in refused.error]


def test_a_dashboard_without_a_key_of_its_own_asks_each_visitor_for_theirs(
    keyless: None, secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(monkeypatch, secured.url)
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert [t.value for t in app.title] == ["Sign in"] and not app.error and not app.metric
    app.text_input[0].input(UNKNOWN_KEY)
    app.button[0].click().run()
    assert any("refused this key" in e.value for e in app.error), [e.value for e in app.error]
    app.text_input[0].input("tpk_열쇠")
    app.button[0].click().run()
    assert not app.exception and any("not an API key" in e.value for e in app.error), [e.value for e in app.error]

    app.text_input[0].input(secured.keys["predictor"])
    app.button[0].click().run()  # signed in: the first page, Predict
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Signed in as **predictor**" in c.value for c in app.sidebar.caption)
    next(b for b in app.button if b.label == "Predict").click().run()
    assert not app.error and float(app.metric[0].value) > 0

    app.switch_page("views/system.py").run()  # listings need the read scope this key lacks
    assert any("refused your key" in e.value for e in app.error), [e.value for e in app.error]

    app.button(key="sign-out").click().run()
    assert [t.value for t in app.title] == ["Sign in"]


def _signed_in(secured: Secured, name: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.text_input[0].input(secured.keys[name])
    app.button[0].click().run()
    assert not app.error, [e.value for e in app.error]
    return app


def _on_page(secured: Secured, name: str, page: str) -> AppTest:
    app = _signed_in(secured, name)
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_the_risk_maps_cached_answers_are_kept_apart_by_key(
    keyless: None, secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map's predictions are cached by the dashboard: a key without the predict scope gets none of another's."""
    point_at(monkeypatch, secured.url)
    predictor = _on_page(secured, "predictor", "views/risk_map.py")
    assert not predictor.error, [e.value for e in predictor.error]
    reader = _on_page(secured, "reader", "views/risk_map.py")
    assert any("lacks the 'predict' scope" in e.value for e in reader.error), [e.value for e in reader.error]


def test_a_session_begun_while_the_api_asked_for_no_key_signs_in_once_it_does(
    keyless: None, stack: Stack, secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(monkeypatch, stack.env["API_URL"])  # AUTH_ENABLED=false
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.error and "Sign in" not in [t.value for t in app.title]
    point_at(monkeypatch, secured.url)  # the same address turning keys on, as far as the dashboard can tell
    app.run()
    assert [t.value for t in app.title] == ["Sign in"] and not app.error, [e.value for e in app.error]


def test_an_admin_makes_a_key_sees_it_once_and_revokes_it(
    keyless: None, secured: Secured, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(monkeypatch, secured.url)
    reader = _on_page(secured, "reader", "views/keys.py")  # signed in with a key lacking admin: asked for one
    assert _asks_for_an_admin_key(reader) and not reader.dataframe

    admin = _on_page(secured, "all", "views/keys.py")  # signed in with an admin key: no second sign-in
    assert not admin.error, [e.value for e in admin.error]
    assert {"predictor", "reader", "all", "other"} <= set(admin.dataframe[0].value["name"])
    admin.text_input[0].input("traffic desk")
    admin.multiselect[0].set_value(["read"])
    next(b for b in admin.button if b.label == "Make key").click().run()
    assert not admin.error, [e.value for e in admin.error]
    (shown,) = admin.code
    with secured.client(shown.value) as desk:
        me = desk.get("/api/keys/me").json()
    assert me["name"] == "traffic desk" and me["scopes"] == ["read"]
    assert any(f"Made key {me['key_id']}" in s.value for s in admin.success)
    admin.run()
    assert not admin.code  # shown once

    admin.selectbox[0].select(me["key_id"])
    next(b for b in admin.button if b.label == "Revoke").click().run()
    assert any(f"Revoked key {me['key_id']}" in s.value for s in admin.success)
    row = admin.dataframe[0].value.set_index("key id").loc[me["key_id"]]
    assert row["revoked"] != ""
    with secured.client(shown.value) as desk:
        assert desk.get("/api/keys/me").status_code == 401


def _asks_for_an_admin_key(app: AppTest) -> bool:
    assert not app.exception, [e.message for e in app.exception]
    return any("needs an admin key" in i.value for i in app.info) and any(
        b.label == "Sign in as admin" for b in app.button
    )


def _admin_sign_in(app: AppTest, key: str) -> AppTest:
    """Submit the first "Sign in as admin" form of the page with `key`."""
    field = next(t for t in app.text_input if t.label == "Admin API key")
    field.input(key)
    form = field.proto.form_id
    next(b for b in app.button if b.label == "Sign in as admin" and b.proto.form_id == form).click().run()
    assert not app.exception, [e.message for e in app.exception]
    return app


@pytest.fixture
def dashboard_key(secured: Secured, monkeypatch: pytest.MonkeyPatch) -> str:
    """A dashboard with a key of its own, as `make run` and compose make it: scopes predict and read."""
    made = cli(secured.env, "create", "dashboard", "--scopes", "predict,read")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    monkeypatch.setenv("API_KEY", key)
    point_at(monkeypatch, secured.url)
    return key


def _key_names(secured: Secured) -> list[str]:
    with secured.client(secured.keys["all"]) as api:
        return [k["name"] for k in api.get("/api/keys").json()]


def test_an_anonymous_visitor_makes_no_key_and_an_admin_sign_in_needs_an_admin_key(
    secured: Secured, dashboard_key: str
) -> None:
    with secured.client(dashboard_key) as api:
        assert api.get("/api/keys").status_code == 403  # the dashboard's own key cannot manage keys
    before = _key_names(secured)
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("views/keys.py").run()
    assert _asks_for_an_admin_key(app) and not app.error, [e.value for e in app.error]
    assert not app.dataframe and not [b for b in app.button if b.label in ("Make key", "Revoke")]

    _admin_sign_in(app, secured.keys["reader"])  # a key without the admin scope is refused
    assert any("lacks the admin scope" in e.value for e in app.error), [e.value for e in app.error]
    _admin_sign_in(app, UNKNOWN_KEY)
    assert any("refused this key" in e.value for e in app.error), [e.value for e in app.error]
    assert _asks_for_an_admin_key(app) and not app.dataframe
    assert _key_names(secured) == before  # nothing was made

    _admin_sign_in(app, secured.keys["all"])
    assert not app.error and not _asks_for_an_admin_key(app), [e.value for e in app.error]
    assert any("Admin actions as **all**" in c.value for c in app.sidebar.caption)
    next(t for t in app.text_input if t.label.startswith("Name")).input("desk")
    app.multiselect[0].set_value(["read"])
    next(b for b in app.button if b.label == "Make key").click().run()
    assert not app.error, [e.value for e in app.error]
    (shown,) = app.code
    with secured.client(shown.value) as desk:
        assert desk.get("/api/keys/me").json()["scopes"] == ["read"]
    assert _key_names(secured) == [*before, "desk"]

    app.button(key="admin-sign-out").click().run()
    assert _asks_for_an_admin_key(app) and not app.dataframe


def test_datasets_and_readings_ask_for_an_admin_key_and_read_with_the_dashboards(
    secured: Secured, dashboard_key: str, tmp_path: Path
) -> None:
    with secured.client(secured.keys["all"]) as api:
        dataset = upload(api, dacon_file(tmp_path, 50, seed=4), name="admin test").json()
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.session_state["dataset"] = dataset["id"]
    app.switch_page("views/datasets.py").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert dataset["id"][:8] in set(app.dataframe[0].value["id"])  # the listing (ids cut to 8), read with its key
    labels = {b.label for b in app.button}
    assert "Sign in as admin" in labels and not labels & {"Upload and check", "Create a read-only link", "Delete"}
    assert not [b for b in app.button if b.label.startswith("Score")]
    sections = [i.value.split(" needs")[0] for i in app.info if "needs an admin key" in i.value]
    assert sections == ["Uploading a file", "Scoring (or cancelling a job)", "Sharing or deleting a dataset"]

    _admin_sign_in(app, secured.keys["all"])
    labels = {b.label for b in app.button}
    assert {"Upload and check", "Create a read-only link", "Delete"} <= labels and "Sign in as admin" not in labels
    next(b for b in app.button if b.label == "Create a read-only link").click().run()
    assert not app.error and [c.value for c in app.code if "?share=" in c.value], [e.value for e in app.error]

    app.switch_page("views/readings.py").run()  # signed in as admin: the upload is offered
    assert not app.exception and not app.error and app.file_uploader, [e.value for e in app.error]
    assert "Load a sample day" in {b.label for b in app.button}
    app.button(key="admin-sign-out").click().run()
    assert _asks_for_an_admin_key(app) and not app.file_uploader
    assert "Load a sample day" not in {b.label for b in app.button}
    (template,) = [b.proto for b in app.get("download_button") if b.proto.label == "Download a template CSV"]
