"""The explanations of an ECLO answer: over all fields, plus their base value, each is its booster's raw score of the
row (log1p(ECLO) for `explanation`, the severe-outcome log-odds for `severe_explanation`); the answer carries the
largest five of each."""

import math

import numpy as np
import pytest

from backend.ml.eclo.model import EXPLANATION_SIZE, EcloModel
from backend.ml.errors import InvalidRow

VARIATIONS = [
    {},
    {"weather": "rain", "road_surface": "wet", "accident_type": "vehicle-pedestrian", "accident_hour": 23},
    {"road_type": "단일로", "accident_type": "차량단독", "time_period": "심야", "accident_hour": 2},
    {"district": "달성군", "day_of_week": "토요일", "accident_month": 7, "accident_day": 19},
    {"district": "대구광역시 달성군 논공읍공단출장"},  # a 동 no model knows: answered at the 구/군 level
]
TOLERANCE = 1e-9


def _encoded(model: EcloModel, rows: list[dict]) -> np.ndarray:
    """The rows the model accepts, encoded, one each of distinct encodings."""
    encoded = []
    for row in rows:
        try:
            encoded.append(model.encode(row).features)
        except InvalidRow:
            continue
    return np.unique(np.vstack(encoded), axis=0)


@pytest.fixture(params=["small_model", "default_model"])
def model(request: pytest.FixtureRequest) -> EcloModel:
    return request.getfixturevalue(request.param)


@pytest.fixture
def rows(classic_row: dict, csv_rows: list[dict]) -> list[dict]:
    return [{**classic_row, **change} for change in VARIATIONS] + csv_rows[:100]


def test_all_fields_plus_the_base_value_are_the_raw_scores(model: EcloModel, rows: list[dict]) -> None:
    X = _encoded(model, rows)
    margins = model.severe_booster.predict(X, raw_score=True)
    raws = model.booster.predict(X, raw_score=True)
    assert len(X) >= 50 and len(np.unique(margins)) >= 40  # distinct inputs, distinct answers
    severe = np.vstack([model.explain_severe_encoded(x) for x in X])
    eclo = np.vstack([model.explain_encoded(x) for x in X])
    assert severe.shape[1] == eclo.shape[1] == len(model.explanation_fields) == 11
    np.testing.assert_allclose(model.severe_base_value + severe.sum(axis=1), margins, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(model.base_value + eclo.sum(axis=1), raws, rtol=0, atol=TOLERANCE)
    # The base is the classifier's, not the city's rate: some rows' fields lower the log-odds, some raise them.
    assert (severe.sum(axis=1) < 0).any() and (severe.sum(axis=1) > 0).any()


def test_the_answer_carries_the_largest_contributions_of_each(model: EcloModel, rows: list[dict]) -> None:
    for row in rows[:20]:
        try:
            encoded = model.encode(row)
        except InvalidRow:
            continue
        answer = model.predict_encoded(encoded)
        x = encoded.features
        for given, full in ((answer.explanation, model.explain_encoded(x)),
                            (answer.severe_explanation, model.explain_severe_encoded(x))):  # fmt: skip
            assert given is not None and len(given) == EXPLANATION_SIZE
            by_field = dict(zip(model.explanation_fields, full, strict=True))
            assert all(by_field[c.feature] == c.contribution for c in given)
            smallest_given = min(abs(c.contribution) for c in given)
            assert all(abs(v) <= smallest_given for f, v in by_field.items() if f not in {c.feature for c in given})
        margin = model.severe_base_value + model.explain_severe_encoded(x).sum()
        slope, intercept = model.calibration.slope, model.calibration.intercept
        assert answer.p_severe == pytest.approx(1 / (1 + math.exp(-(slope * margin + intercept))), abs=1e-12)
        out = answer.to_dict()
        assert [c["feature"] for c in out["severe_explanation"]] == [c.feature for c in answer.severe_explanation]


def test_batches_explain_both_as_single_answers_do(small_model: EcloModel, rows: list[dict]) -> None:
    many = small_model.predict_many(rows[:30], explain=True)
    for row, batch in zip(rows[:30], many, strict=True):
        single = small_model.predict_one(row)
        assert batch.explanation == single.explanation
        assert batch.severe_explanation == single.severe_explanation
    unexplained = small_model.predict_one(rows[0], explain=False)
    assert unexplained.explanation is unexplained.severe_explanation is None
    assert "severe_explanation" not in unexplained.to_dict()
