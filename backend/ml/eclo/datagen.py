"""Seeded generator of a synthetic Dacon Daegu `train.csv` (same columns, Korean headers).

Frequencies follow the reference facts; ECLO is composed from generated injury counts. Severity has real,
learnable structure so that a broken pipeline shows up as a worse score:
- per-victim severity rises at night, on days off, in tunnels/overpasses/bridges, in fog, rain and ice,
  for pedestrians and single-vehicle crashes, in rural 달성군, with a fixed random effect per 동;
- the number of victims is higher for car-to-car crashes, at intersections and on days off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend.ml.eclo.dacon import eclo_from_injuries
from backend.ml.eclo.features import LATE_NIGHT, TIME_PERIOD_HOURS
from backend.ml.eclo.reference import DAYS, ROAD_TYPE_SHARES, counts, dongs_by_gu, train_columns

HOUR_WEIGHTS = np.array(
    [
        2.0,
        1.5,
        1.1,
        0.8,
        0.8,
        1.2,
        2.5,
        4.5,
        5.5,
        4.5,
        4.5,
        5.0,
        5.5,
        5.5,
        5.5,
        6.0,
        6.5,
        7.5,
        7.0,
        5.5,
        4.5,
        4.0,
        3.5,
        2.8,
    ]
)
SURFACE_GIVEN_WEATHER = {
    "맑음": {
        "건조": 0.985,
        "젖음/습기": 0.0125,
        "기타": 0.0015,
        "서리/결빙": 0.0005,
        "적설": 0.0,
        "침수": 0.0,
    },
    "흐림": {"건조": 0.75, "젖음/습기": 0.24, "기타": 0.01},
    "비": {"젖음/습기": 0.895, "건조": 0.09, "기타": 0.01, "침수": 0.005},
    "눈": {"적설": 0.3, "서리/결빙": 0.3, "젖음/습기": 0.4},
    "안개": {"건조": 0.6, "젖음/습기": 0.4},
    "기타": {"건조": 0.5, "기타": 0.3, "젖음/습기": 0.2},
}
ROAD_SEVERITY = {
    "단일로 - 터널": 1.0,
    "단일로 - 고가도로위": 0.7,
    "단일로 - 교량": 0.6,
    "단일로 - 지하차도(도로)내": 0.6,
    "교차로 - 교차로횡단보도내": 0.3,
    "단일로 - 기타": 0.15,
    "주차장 - 주차장": -0.9,
}
WEATHER_SEVERITY = {"안개": 0.7, "눈": 0.4, "비": 0.25, "흐림": 0.1}
SURFACE_SEVERITY = {"서리/결빙": 0.5, "적설": 0.3, "침수": 0.4, "젖음/습기": 0.15}
TYPE_SEVERITY = {"차대사람": 0.9, "차량단독": 1.1, "차대차": -0.1}
GU_SEVERITY = {
    "달성군": 0.6,
    "동구": 0.2,
    "북구": 0.1,
    "달서구": 0.0,
    "서구": 0.0,
    "남구": -0.1,
    "수성구": -0.2,
    "중구": -0.45,
}
# Baseline per-victim injury logits: reported, minor, serious, death (severity adds to the last two).
INJURY_LOGITS = np.array([-2.0, 0.0, -1.8, -4.6])
SEVERITY_SLOPE = np.array([-0.6, 0.0, 1.0, 1.8])

SUBTYPES = {
    "차대차": (["측면충돌", "추돌", "정면충돌", "후진중충돌", "기타"], [0.42, 0.25, 0.05, 0.05, 0.23]),
    "차대사람": (
        ["횡단중", "차도통행중", "길가장자리구역통행중", "보도통행중", "기타"],
        [0.4, 0.12, 0.08, 0.05, 0.35],
    ),
    "차량단독": (
        ["공작물충돌", "전도전복", "도로이탈 - 기타", "주/정차차량 충돌", "기타"],
        [0.35, 0.2, 0.1, 0.1, 0.25],
    ),
}
VIOLATIONS = (
    [
        "안전운전불이행",
        "신호위반",
        "안전거리미확보",
        "교차로운행방법위반",
        "보행자보호의무위반",
        "중앙선침범",
        "기타",
    ],
    [0.6, 0.11, 0.09, 0.06, 0.05, 0.04, 0.05],
)
VEHICLES = (
    ["승용", "화물", "승합", "이륜", "원동기", "자전거", "개인형이동수단(PM)", "건설기계", "기타불명"],
    [0.72, 0.12, 0.04, 0.05, 0.01, 0.02, 0.02, 0.01, 0.01],
)
DRIVER_INJURY = (["상해없음", "경상", "중상", "부상신고", "기타불명"], [0.6, 0.25, 0.08, 0.05, 0.02])
INJURY_NAMES = np.array(["부상신고", "경상", "중상", "사망"])


def _choice(rng: np.random.Generator, shares: dict[str, float] | tuple[list[str], list[float]], n: int) -> np.ndarray:
    values, weights = (list(shares), list(shares.values())) if isinstance(shares, dict) else shares
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(np.asarray(values, dtype=object), size=n, p=p / p.sum())


def _lookup(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    return np.array([table.get(v, 0.0) for v in values], dtype=np.float64)


def generate_dacon_frame(
    n_rows: int = 40_000, seed: int = 42, years: tuple[int, ...] = (2019, 2020, 2021)
) -> pd.DataFrame:
    """A synthetic accident table in the Dacon `train.csv` layout; the same seed gives the same table."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(year=min(years), month=1, day=1)
    n_days = (pd.Timestamp(year=max(years) + 1, month=1, day=1) - start).days
    dates = start + pd.to_timedelta(rng.integers(0, n_days, n_rows), unit="D")
    hours = rng.choice(24, size=n_rows, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    order = np.lexsort((hours, dates.values))
    dates, hours = dates[order], hours[order]
    weekday = dates.day_of_week.to_numpy()
    day_names = np.asarray(DAYS, dtype=object)[weekday]

    weather = _choice(rng, counts("기상상태"), n_rows)
    surface = np.empty(n_rows, dtype=object)
    for condition, shares in SURFACE_GIVEN_WEATHER.items():
        mask = weather == condition
        surface[mask] = _choice(rng, {k: v for k, v in shares.items() if v > 0}, int(mask.sum()))

    dongs = dongs_by_gu()
    gu = _choice(rng, counts("구군"), n_rows)
    district = np.empty(n_rows, dtype=object)
    dong_effect = np.zeros(n_rows)
    dong_crowding = np.zeros(n_rows)
    area_rng = np.random.default_rng(seed + 1)  # fixed per-동 traits, independent of n_rows
    for name, names in dongs.items():
        popularity = area_rng.dirichlet(np.ones(len(names)))
        effects = area_rng.normal(0.0, 0.35, len(names))
        crowding = area_rng.normal(0.0, 0.9, len(names))
        mask = gu == name
        picks = rng.choice(len(names), size=int(mask.sum()), p=popularity)
        district[mask] = [f"대구광역시 {name} {names[i]}" for i in picks]
        dong_effect[mask] = effects[picks]
        dong_crowding[mask] = crowding[picks]

    road = _choice(rng, ROAD_TYPE_SHARES, n_rows)
    kind = _choice(rng, counts("사고유형"), n_rows)
    crosswalk = road == "교차로 - 교차로횡단보도내"
    kind[crosswalk & (rng.random(n_rows) < 0.7)] = "차대사람"

    night = np.isin(hours, list(TIME_PERIOD_HOURS[LATE_NIGHT]))
    day_off = weekday >= 5
    sunday = weekday == 6
    severity = (
        0.75 * night
        + 0.3 * np.isin(hours, [6, 20, 21])
        + 0.35 * sunday
        + 0.15 * day_off
        + _lookup(road, ROAD_SEVERITY)
        + _lookup(weather, WEATHER_SEVERITY)
        + _lookup(surface, SURFACE_SEVERITY)
        + _lookup(kind, TYPE_SEVERITY)
        + _lookup(gu, GU_SEVERITY)
        + dong_effect
        - 0.08 * (dates.year.to_numpy() - min(years))
        + rng.normal(0.0, 0.25, n_rows)
    )
    intersection = np.char.startswith(road.astype(str), "교차로")
    # Chance that each of up to three more people is hurt; multi-victim crashes are car-to-car.
    more_victims = np.where(
        kind == "차대차",
        1 / (1 + np.exp(-(-2.8 + 1.2 * intersection + 1.2 * day_off + 0.6 * night + dong_crowding))),
        np.where(kind == "차량단독", 0.05, 0.01),
    )
    victims = 1 + rng.binomial(3, more_victims)

    row_of_victim = np.repeat(np.arange(n_rows), victims)
    logits = INJURY_LOGITS[None, :] + severity[row_of_victim, None] * SEVERITY_SLOPE[None, :]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    injury = (rng.random(len(row_of_victim))[:, None] > probs.cumsum(axis=1)).sum(axis=1).clip(0, 3)
    tallies = np.zeros((n_rows, 4), dtype=np.int64)
    np.add.at(tallies, (row_of_victim, injury), 1)
    reported, minor, serious, deaths = tallies.T
    eclo = eclo_from_injuries(deaths, serious, minor, reported)

    worst = np.where(deaths > 0, 3, np.where(serious > 0, 2, np.where(minor > 0, 1, 0)))
    subtype = np.empty(n_rows, dtype=object)
    for name, spec in SUBTYPES.items():
        mask = kind == name
        subtype[mask] = _choice(rng, spec, int(mask.sum()))
    victim_vehicle = _choice(rng, VEHICLES, n_rows)
    victim_vehicle[kind == "차대사람"] = "보행자"
    solo = kind == "차량단독"

    def ages(low: int, high: int) -> np.ndarray:
        return np.array([f"{a}세" for a in rng.integers(low, high, n_rows)], dtype=object)

    frame = pd.DataFrame(
        {
            "ID": [f"ACCIDENT_{i:05d}" for i in range(n_rows)],
            "사고일시": [f"{d:%Y-%m-%d} {h:02d}" for d, h in zip(dates, hours, strict=True)],
            "요일": day_names,
            "기상상태": weather,
            "시군구": district,
            "도로형태": road,
            "노면상태": surface,
            "사고유형": kind,
            "사고유형 - 세부분류": subtype,
            "법규위반": _choice(rng, VIOLATIONS, n_rows),
            "가해운전자 차종": _choice(rng, VEHICLES, n_rows),
            "가해운전자 성별": _choice(rng, (["남", "여"], [0.74, 0.26]), n_rows),
            "가해운전자 연령": ages(18, 85),
            "가해운전자 상해정도": _choice(rng, DRIVER_INJURY, n_rows),
            "피해운전자 차종": np.where(solo, "", victim_vehicle),
            "피해운전자 성별": np.where(solo, "", _choice(rng, (["남", "여"], [0.6, 0.4]), n_rows)),
            "피해운전자 연령": np.where(solo, "", ages(5, 90)),
            "피해운전자 상해정도": np.where(solo, "", INJURY_NAMES[worst]),
            "사망자수": deaths,
            "중상자수": serious,
            "경상자수": minor,
            "부상자수": reported,
            "ECLO": eclo,
        }
    )
    return frame[train_columns()]


def write_dacon_csv(path: Path | str, n_rows: int = 40_000, seed: int = 42, encoding: str = "utf-8") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_dacon_frame(n_rows, seed).to_csv(path, index=False, encoding=encoding)
    return path
