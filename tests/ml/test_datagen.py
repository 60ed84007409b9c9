import numpy as np
import pandas as pd

from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.reference import DAYS, counts, train_columns


def test_same_seed_same_table_other_seed_other_table() -> None:
    a, b, c = (
        generate_dacon_frame(2000, seed=11),
        generate_dacon_frame(2000, seed=11),
        generate_dacon_frame(2000, seed=12),
    )
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_layout_and_eclo_composition() -> None:
    frame = generate_dacon_frame(3000, seed=1)
    assert list(frame.columns) == train_columns()
    expected = 10 * frame["사망자수"] + 5 * frame["중상자수"] + 3 * frame["경상자수"] + frame["부상자수"]
    assert (frame["ECLO"] == expected).all() and (frame["ECLO"] >= 1).all()
    when = pd.to_datetime(frame["사고일시"], format="%Y-%m-%d %H")
    assert (frame["요일"] == [DAYS[d] for d in when.dt.day_of_week]).all()


def test_frequencies_close_to_reference() -> None:
    frame = generate_dacon_frame(40_000, seed=42)
    for column, name in (("기상상태", "기상상태"), ("사고유형", "사고유형")):
        ref = pd.Series(counts(name), dtype=float)
        ref /= ref.sum()
        got = frame[column].value_counts(normalize=True).reindex(ref.index, fill_value=0)
        assert np.abs(got - ref).max() < 0.03, column
    assert abs(frame["ECLO"].mean() - 4.73) < 0.5 and frame["ECLO"].median() == 3


def test_severity_has_structure() -> None:
    frame = generate_dacon_frame(40_000, seed=42)
    by_road = frame.groupby("도로형태")["ECLO"].mean()
    assert by_road["단일로 - 터널"] > by_road["주차장 - 주차장"] + 1
    night = pd.to_datetime(frame["사고일시"], format="%Y-%m-%d %H").dt.hour.isin([22, 23, 0, 1, 2, 3, 4, 5])
    assert frame.loc[night, "ECLO"].mean() > frame.loc[~night, "ECLO"].mean()
