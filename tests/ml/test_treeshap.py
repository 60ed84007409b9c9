"""The TreeSHAP tables give LightGBM's own pred_contrib, summed by group, for any row a booster can be given."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from backend.ml.eclo import treeshap
from backend.ml.eclo.model import EcloModel
from backend.ml.eclo.treeshap import TooDeep, TreeShapTables


def _awkward(X: np.ndarray, seed: int) -> np.ndarray:
    """Rows of X with values no encoder gives: NaN, negatives, fractions, zeros, codes past every category."""
    rng = np.random.default_rng(seed)
    out = np.vstack([X] * 5)
    n = len(X)
    out[:n][rng.random(X.shape) < 0.3] = np.nan
    out[n : 2 * n][rng.random(X.shape) < 0.2] = -1.0
    out[2 * n : 3 * n] += rng.choice([-0.5, 0.5, 1e-40], size=X.shape)
    out[3 * n : 4 * n][rng.random(X.shape) < 0.3] = 0.0
    out[4 * n :][rng.random(X.shape) < 0.2] = 1e6
    return out


def _assert_equal_to_lightgbm(booster: lgb.Booster, groups: np.ndarray, X: np.ndarray) -> None:
    tables = TreeShapTables(booster, groups)
    want = booster.predict(X, pred_contrib=True) @ groups
    got = np.vstack([tables.contributions(np.ascontiguousarray(row)) for row in X])
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_tables_equal_lightgbm_on_the_model_rows_and_on_rows_no_encoder_gives(
    small_model: EcloModel, csv_rows: list[dict]
) -> None:
    X = np.vstack([small_model.encode(row).features for row in csv_rows[:200]])
    X = np.vstack([X, _awkward(X, 3)])
    for booster in (small_model.booster, small_model.severe_booster):
        _assert_equal_to_lightgbm(booster, small_model._group_matrix, X)


@pytest.mark.parametrize("missing", ["zero_as_missing", "use_missing_false", "nan"])
def test_tables_follow_each_missing_value_rule(missing: str) -> None:
    """Numerical splits with NaN or zero as missing (or none), categorical splits, shallow trees."""
    rng = np.random.default_rng(11)
    n = 3000
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 12, n).astype(float), rng.normal(size=n)])
    X[rng.random(n) < 0.2, 0] = 0.0 if missing == "zero_as_missing" else np.nan
    X[rng.random(n) < 0.1, 1] = np.nan
    y = X[:, 0] * 2 + (X[:, 1] % 3) + np.where(np.isnan(X[:, 0]), 3.0, 0.0) + rng.normal(size=n)
    params = {
        "max_depth": 3, "num_leaves": 8, "verbosity": -1, "min_data_in_leaf": 20, "seed": 1,
        "zero_as_missing": missing == "zero_as_missing", "use_missing": missing != "use_missing_false",
    }  # fmt: skip
    data = lgb.Dataset(np.nan_to_num(X, nan=0.0) if missing == "zero_as_missing" else X, y, categorical_feature=[1])
    booster = lgb.train(params, data, num_boost_round=40)
    groups = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    _assert_equal_to_lightgbm(booster, groups, np.vstack([X, _awkward(X[:200], 5)]))


def test_deep_trees_are_refused_and_the_model_keeps_lightgbms_treeshap(
    small_model: EcloModel, classic_row: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2000, 4))
    booster = lgb.train({"num_leaves": 64, "min_data_in_leaf": 5, "verbosity": -1},
                        lgb.Dataset(X, X.sum(axis=1) + rng.normal(size=2000)), num_boost_round=3)  # fmt: skip
    with pytest.raises(TooDeep):
        TreeShapTables(booster, np.eye(5))
    with monkeypatch.context() as patch:
        patch.setattr(treeshap, "MAX_TABLE_ROWS", 1000)  # the small model's trees have more patterns than that
        with pytest.raises(TooDeep):
            TreeShapTables(small_model.booster, small_model._group_matrix)

    row = small_model.encode(classic_row).features
    explainers = (small_model._explainer, small_model._severe_explainer)
    tables = [e.tables for e in explainers]
    try:
        for explainer in explainers:
            explainer.tables = None
        fallback = small_model.explain_encoded(row), small_model.explain_severe_encoded(row)
    finally:
        for explainer, kept in zip(explainers, tables, strict=True):
            explainer.tables = kept
    np.testing.assert_allclose(small_model.explain_encoded(row), fallback[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(small_model.explain_severe_encoded(row), fallback[1], rtol=0, atol=1e-12)
