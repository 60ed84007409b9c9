"""The model lifecycle through the in-process API: train a version from an uploaded dataset (the task run as a
worker would), compare, promote, roll back, shadow scoring and drift."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.datagen import write_dacon_csv
from backend.tasks.shadow import run_shadow_scores
from backend.tasks.training import run_training
from backend.wiring import Resources
from tests.fixtures.datasets import upload
from tests.fixtures.object_store import stored_keys


def _dataset(client: TestClient, folder: Path, rows: int, seed: int, drop: tuple[str, ...] = ()) -> str:
    path = write_dacon_csv(folder / f"train-{rows}-{seed}.csv", rows, seed)
    if drop:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=list(drop))
        frame.to_csv(path, index=False)
    response = upload(client, path.read_bytes(), filename=path.name, kind="eclo")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(client: TestClient, resources: Resources, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/models/eclo/versions", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending" and accepted["poll_url"].endswith(accepted["job_id"])
    run_training(resources, accepted["job_id"])
    return client.get(accepted["poll_url"]).json()


@pytest.fixture
def trained(app_client: TestClient, app_resources: Resources, tmp_path: Path) -> dict[str, Any]:
    dataset_id = _dataset(app_client, tmp_path, 3000, seed=11)
    job = _train(app_client, app_resources, {"dataset_ids": [dataset_id], "holdout_from_year": 2021})
    assert job["status"] == "success", job
    return job


def test_a_version_trained_from_a_dataset_is_listed_with_its_comparison(
    app_client: TestClient, trained: dict[str, Any]
) -> None:
    assert trained["fraction"] == 1.0 and trained["stage"] == "done" and trained["log"]
    listing = app_client.get("/api/models/eclo/versions").json()
    default, new = listing["versions"]
    assert default["is_default"] and default["aliases"] == ["champion"] and listing["champion"] == default["version"]
    assert new["version"] == trained["version"] and new["aliases"] == [] and not new["is_default"]
    assert new["training_data"]["rows"] > 2000 and new["training_data"]["years"] == [2019, 2021]
    comparison = new["comparison"]
    # The new version and the champion on the very same held-out rows.
    assert comparison["new"]["rows"] == comparison["champion"]["rows"] > 0
    assert comparison["champion"]["version"] == default["version"]
    for model in ("new", "champion"):
        assert 0 < comparison[model]["rmsle"] < 5 and 0 <= comparison[model]["severe_auc"] <= 1


def test_a_trained_version_is_in_the_storage_and_nothing_of_it_in_data_dir_with_an_object_store(
    app_resources: Resources, trained: dict[str, Any]
) -> None:
    settings, version = app_resources.settings, trained["version"]
    assert stored_keys(settings, f"models/eclo/{version}") == [
        f"models/eclo/{version}/{file}" for file in ("metadata.json", "model.txt", "severe.txt")
    ]
    served = app_resources.registry.get("eclo", version)
    assert served.version == version and served.name == "eclo"
    versions = app_resources.registry.versions
    assert versions is not None and not list((versions.work_dir / "eclo").glob(".partial-*"))
    if settings.storage_location is not None:  # TEST_STORAGE=s3: the version served from this host's copy
        assert not (settings.data_dir / "models").exists()
        assert versions.local_folder(versions.get("eclo", version)).is_relative_to(versions.cache_dir)


def test_promote_then_roll_back(app_client: TestClient, app_resources: Resources, trained: dict[str, Any],
                                classic_row: dict) -> None:  # fmt: skip
    old = app_client.get("/api/models/eclo").json()["version"]
    new = trained["version"]
    moved = app_client.put("/api/models/eclo/aliases/champion", json={"version": new})
    assert moved.status_code == 200 and moved.json()["previous"] is None and moved.json()["version"] == new
    app_resources.watcher.refresh()  # what every process's watcher does within MODEL_RELOAD_SECONDS
    assert app_client.post("/api/predict/eclo", json=classic_row).json()["model_version"] == new
    assert app_client.get("/api/models/eclo").json()["version"] == new
    assert app_client.get("/api/models/eclo/versions").json()["rollback_to"] == old
    back = app_client.post("/api/models/eclo/rollback")
    assert back.status_code == 200 and back.json()["version"] == old
    app_resources.watcher.refresh()
    assert app_client.post("/api/predict/eclo", json=classic_row).json()["model_version"] == old
    moves = app_client.get("/api/models/eclo/aliases/history").json()["moves"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(new, old), (None, new)]
    assert app_client.post("/api/models/eclo/rollback").status_code == 200  # back to the new one
    versions = app_client.get("/api/models/eclo/versions").json()
    assert versions["champion"] == new


def test_bad_requests_name_the_field(app_client: TestClient, tmp_path: Path) -> None:
    assert app_client.post("/api/models/eclo/versions", json={"dataset_ids": ["nope"], "holdout_from_year": 2021}
                           ).json()["error"]["details"] == [{"field": "dataset_ids[0]"}]  # fmt: skip
    too_long = app_client.post("/api/models/eclo/versions", json={"dataset_ids": ["x" * 65], "holdout_from_year": 2021})
    assert too_long.status_code == 422 and too_long.json()["error"]["details"][0]["field"] == "dataset_ids.0"
    too_many = app_client.post("/api/models/eclo/versions", json={"dataset_ids": ["x"] * 21, "holdout_from_year": 2021})
    assert too_many.status_code == 422 and too_many.json()["error"]["details"][0]["field"] == "dataset_ids"
    outcomes = ("사망자수", "중상자수", "경상자수", "부상자수", "ECLO")
    no_outcomes = _dataset(app_client, tmp_path, 300, seed=5, drop=outcomes)
    refused = app_client.post("/api/models/eclo/versions", json={"dataset_ids": [no_outcomes],
                                                                  "holdout_from_year": 2021})  # fmt: skip
    assert refused.status_code == 422 and "no outcome columns" in refused.json()["error"]["message"]
    no_severe = _dataset(app_client, tmp_path, 300, seed=6, drop=("사망자수", "중상자수"))
    refused = app_client.post("/api/models/eclo/versions", json={"dataset_ids": [no_severe],
                                                                  "holdout_from_year": 2021})  # fmt: skip
    assert refused.status_code == 422 and "사망자수, 중상자수" in refused.json()["error"]["message"]
    missing = app_client.post("/api/models/eclo/versions", json={"since": "2024-01-01T00:00:00Z"})
    assert missing.status_code == 422 and "dataset_ids" in missing.json()["error"]["message"]
    assert app_client.post("/api/models/echo/versions", json={}).status_code == 422
    assert app_client.put("/api/models/eclo/aliases/champion", json={"version": "ab" * 8}).status_code == 404
    assert app_client.put("/api/models/eclo/aliases/boss", json={"version": "ab" * 8}).status_code == 422
    champion = app_client.get("/api/models/eclo").json()["version"]
    assert app_client.put("/api/models/eclo/aliases/challenger", json={"version": champion}).status_code == 409
    assert app_client.post("/api/models/eclo/rollback").status_code == 409
    assert app_client.delete(f"/api/models/eclo/versions/{champion}").status_code == 409


def test_too_few_rows_fail_naming_why_and_leave_no_version(
    app_client: TestClient, app_resources: Resources, tmp_path: Path
) -> None:
    dataset_id = _dataset(app_client, tmp_path, 60, seed=7)
    job = _train(app_client, app_resources, {"dataset_ids": [dataset_id], "holdout_from_year": 2021})
    assert job["status"] == "failure" and "rows" in job["error"] and job["version"] is None
    assert len(app_client.get("/api/models/eclo/versions").json()["versions"]) == 1
    versions = app_resources.registry.versions
    assert versions is not None and not list((versions.work_dir / "eclo").glob(".partial-*"))
    assert stored_keys(app_resources.settings, "models/eclo") == []


def test_cancel_a_pending_job(app_client: TestClient, app_resources: Resources, tmp_path: Path) -> None:
    dataset_id = _dataset(app_client, tmp_path, 300, seed=8)
    accepted = app_client.post("/api/models/eclo/versions", json={"dataset_ids": [dataset_id],
                                                                   "holdout_from_year": 2021}).json()  # fmt: skip
    cancelled = app_client.post(f"/api/models/eclo/training/{accepted['job_id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert run_training(app_resources, accepted["job_id"])["status"] == "skipped"
    assert app_client.post(f"/api/models/eclo/training/{accepted['job_id']}/cancel").status_code == 409


def test_shadow_scoring_with_a_challenger(
    app_client: TestClient, app_resources: Resources, trained: dict[str, Any], csv_rows: list[dict]
) -> None:
    assert app_client.get("/api/models/eclo/shadow").json()["challenger"] is None
    moved = app_client.put("/api/models/eclo/aliases/challenger", json={"version": trained["version"]})
    assert moved.status_code == 200
    app_resources.watcher.refresh()
    services = app_client.app.state.services  # type: ignore[attr-defined]
    services.shadow.every = 1  # every prediction (SHADOW_SAMPLE_RATE=1)
    # The workers' task, run here on what the API sends it (through JSON, as the broker carries it).
    sent: list[int] = []
    services.shadow.send = lambda name, version, items: sent.append(
        run_shadow_scores(app_resources, name, version, json.loads(json.dumps(items)))
    )
    answers = [app_client.post("/api/predict/eclo", json=row).json() for row in csv_rows[:40]]
    services.shadow.drain()
    assert sum(sent) == sum(not a["cached"] for a in answers)
    summary = app_client.get("/api/models/eclo/shadow").json()
    computed = [(r, a) for r, a in zip(csv_rows[:40], answers, strict=True) if not a["cached"]]
    assert summary["challenger"] == trained["version"] and summary["count"] == len(computed) > 30
    challenger = app_resources.registry.get("eclo", trained["version"])
    differences = [abs(challenger.predict_one(r).eclo - a["eclo"]) for r, a in computed]
    assert summary["largest_difference"] == pytest.approx(max(differences), abs=1e-6)
    assert summary["mean_abs_difference"] == pytest.approx(sum(differences) / len(computed), abs=1e-6)
    assert 0 <= summary["level_differs_share"] <= 1


def test_drift_flags_shifted_inputs_and_not_the_training_ones(
    app_client: TestClient, app_resources: Resources, trained: dict[str, Any], tmp_path: Path
) -> None:
    app_client.put("/api/models/eclo/aliases/champion", json={"version": trained["version"]})
    app_resources.watcher.refresh()
    same = pd.read_csv(write_dacon_csv(tmp_path / "same.csv", 400, 12), dtype=str, keep_default_na=False)
    for row in api_rows(same):
        assert app_client.post("/api/predict/eclo", json=row).status_code == 200
    app_client.app.state.services.recorder.flush()  # type: ignore[attr-defined]
    report = app_client.get("/api/models/eclo/drift").json()
    assert report["rows"] == 400 and report["version"] == trained["version"]
    assert report["drifted_share"] == 0, [f for f in report["fields"] if f["drifted"]]
    shifted = same.copy()
    shifted["사고일시"] = shifted["사고일시"].str[:11] + "03"  # every accident at 3 in the night
    shifted["기상상태"] = same["기상상태"].value_counts().index[-1]  # the rarest weather, now always
    for row in api_rows(shifted):
        assert app_client.post("/api/predict/eclo", json=row).status_code == 200
    app_client.app.state.services.recorder.flush()  # type: ignore[attr-defined]
    drifted = {f["field"]: f for f in app_client.get("/api/models/eclo/drift").json()["fields"]}
    assert drifted["accident_hour"]["drifted"] and drifted["weather"]["drifted"]
    assert drifted["accident_hour"]["psi"] >= 0.2
    assert not drifted["road_type"]["drifted"]
    metrics = app_client.get("/metrics").text
    assert 'model_drift_share{model="eclo"}' in metrics


def test_a_congestion_version_from_stored_readings_beats_copy_last(
    app_client: TestClient, app_resources: Resources, small_network: dict[str, Path]
) -> None:
    from backend.db.readings import insert_new
    from backend.ml.congestion import loaders
    from backend.services.traffic import register_model_sensors

    register_model_sensors(app_resources.sessions, app_resources.registry.get("congestion"))  # type: ignore[arg-type]
    speeds = loaders.read_speeds(small_network["speeds_gz"]).iloc[: 288 * 4]  # four days, in Los Angeles time
    offset = -420  # the readings' own clock (PDT), as the feed stores them
    rows = [
        (
            sensor,
            moment.tz_localize("UTC").to_pydatetime() - timedelta(minutes=offset),
            float(value),
            None,
            None,
            offset,
        )
        for moment, values in speeds.iterrows()
        for sensor, value in values.items()
        if value > 0
    ]
    with app_resources.sessions() as session:
        assert insert_new(session, rows) == len(rows)
        session.commit()
    since = (speeds.index[0].tz_localize("UTC") - timedelta(minutes=offset)).isoformat()
    until = (speeds.index[-1].tz_localize("UTC") - timedelta(minutes=offset - 5)).isoformat()
    accepted = app_client.post("/api/models/congestion/versions", json={"since": since, "until": until})
    assert accepted.status_code == 202, accepted.text
    run_training(app_resources, accepted.json()["job_id"])
    job = app_client.get(accepted.json()["poll_url"]).json()
    assert job["status"] == "success", job
    new = app_client.get("/api/models/congestion/versions").json()["versions"][-1]
    assert new["version"] == job["version"] and new["training_data"]["steps"] == len(speeds)
    # The grid is the readings' own clock: the first step is the first local moment.
    assert new["training_data"]["time_range"][0] == str(speeds.index[0])
    comparison = new["comparison"]
    assert comparison["windows"] > 0
    for horizon in ("15", "30", "60"):
        assert comparison["new"]["mae"][horizon] < comparison["copy_last"]["mae"][horizon]
    assert comparison["champion"]["version"] == app_client.get("/api/models/congestion").json()["version"]
    refused = app_client.post("/api/models/congestion/versions", json={"since": until, "until": since})
    assert refused.status_code == 422 and refused.json()["error"]["details"] == [{"field": "until"}]


def test_only_versions_beyond_the_kept_ones_and_without_an_alias_are_deleted(
    app_client: TestClient, app_resources: Resources, trained: dict[str, Any]
) -> None:
    storage, settings = app_resources.dataset_files.storage, app_resources.settings
    older = "0" * 16  # a version trained before the kept ones
    for key in stored_keys(settings, f"models/eclo/{trained['version']}"):
        with storage.open_read(key) as handle:
            data = handle.read()
        if key.endswith("/metadata.json"):
            data = json.dumps({**json.loads(data), "trained_at": "2020-01-01T00:00:00+00:00"}).encode()
        storage.put_if_absent(key.replace(trained["version"], older), data)
    app_resources.settings.model_keep_versions = 1
    listing = {v["version"]: v for v in app_client.get("/api/models/eclo/versions").json()["versions"]}
    assert listing[older]["deletable"] and not listing[trained["version"]]["deletable"]
    refused = app_client.delete(f"/api/models/eclo/versions/{trained['version']}")
    assert refused.status_code == 409 and "MODEL_KEEP_VERSIONS" in refused.json()["error"]["message"]
    assert app_client.delete(f"/api/models/eclo/versions/{older}").status_code == 204
    assert stored_keys(settings, f"models/eclo/{older}") == []
    assert stored_keys(settings, f"models/eclo/{trained['version']}")
    assert app_client.delete(f"/api/models/eclo/versions/{older}").status_code == 404
