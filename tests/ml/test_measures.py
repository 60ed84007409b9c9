import itertools

import numpy as np
import pytest

from backend.ml.eclo.measures import (
    Constants,
    PlattScaling,
    auc,
    calibration_table,
    cross_fitted_probabilities,
    eclo_measures,
    severe_measures,
)


def _pairwise_auc(score: np.ndarray, label: np.ndarray) -> float:
    pos, neg = score[label == 1], score[label == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_equals_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(1)
    score = rng.integers(0, 6, 80).astype(float)  # many ties
    label = (rng.random(80) < 0.3 + 0.1 * score).astype(float)
    assert auc(score, label) == pytest.approx(_pairwise_auc(score, label), abs=1e-12)
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1.0, 1.0])))  # one class only


def test_platt_scaling_recovers_the_true_link() -> None:
    rng = np.random.default_rng(2)
    margin = rng.normal(0, 1.5, 40_000)
    label = (rng.random(len(margin)) < 1 / (1 + np.exp(-(0.6 * margin - 0.4)))).astype(float)
    fitted = PlattScaling.fit(margin, label)
    assert fitted.slope == pytest.approx(0.6, abs=0.03) and fitted.intercept == pytest.approx(-0.4, abs=0.03)
    assert fitted.apply_one(1.0) == pytest.approx(float(fitted.apply(np.array([1.0]))[0]), abs=1e-15)
    assert PlattScaling.from_dict(fitted.to_dict()) == fitted


def test_cross_fitted_probabilities_come_from_the_other_half() -> None:
    rng = np.random.default_rng(3)
    margin = rng.normal(0, 1, 2000)
    label = (rng.random(2000) < 1 / (1 + np.exp(-margin))).astype(float)
    probability = cross_fitted_probabilities(margin, label, seed=4)
    halves = np.array_split(np.random.default_rng(4).permutation(2000), 2)
    expected = PlattScaling.fit(margin[halves[1]], label[halves[1]]).apply(margin[halves[0]])
    assert np.array_equal(probability[halves[0]], expected)


def test_calibration_table_by_decile() -> None:
    probability = np.linspace(0.05, 0.95, 100)
    label = (np.arange(100) % 2).astype(float)
    table = calibration_table(probability, label)
    assert [r["decile"] for r in table] == list(range(1, 11)) and all(r["rows"] == 10 for r in table)
    assert table[0]["predicted"] == pytest.approx(probability[:10].mean(), abs=1e-6)
    assert all(r["observed"] == 0.5 for r in table)


def test_constants_and_measures_against_them() -> None:
    log_eclo = np.log1p(np.array([3.0, 5.0, 3.0, 1.0]))
    years = np.array([2014, 2014, 2015, 2015])
    severe = np.array([1.0, 1.0, 0.0, 0.0])
    constants = Constants.of(log_eclo, years, severe)
    assert (constants.last_year, constants.severe_rate, constants.last_year_severe_rate) == (2015, 0.5, 0.0)
    assert Constants.from_dict(constants.to_dict()).last_year == 2015
    measured = eclo_measures(log_eclo, log_eclo, constants)
    assert measured["rmsle"] == 0.0 and measured["ratio_to_training_mean"] == 0.0
    assert measured["constant_last_year_rmsle"] > measured["constant_training_mean_rmsle"] > 0
    severe_report = severe_measures(np.array([0.9, 0.8, 0.1, np.nan]), np.array([1.0, 1.0, 0.0, np.nan]), constants)
    assert severe_report["rows"] == 3 and severe_report["auc"] == 1.0
    assert severe_report["brier"] < severe_report["brier_constant"]
