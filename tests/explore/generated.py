"""Generated tables in the layouts of the Daegu side data (Korean headers, 위도/경도, 소재지지번주소) and of the Dacon
accident files, written as CSV in the encodings and delimiters uploads come in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend.explore.tables import read_csv_table, write_parquet

# (구, 동): 중앙동 is in two 구 on purpose (an address without its 구 cannot be placed).
DONGS = [
    ("남구", "대명동"),
    ("남구", "봉덕동"),
    ("남구", "중앙동"),
    ("중구", "동성로1가"),
    ("중구", "중앙동"),
    ("중구", "남산동"),
    ("달성군", "논공읍"),
    ("달성군", "화원읍"),
    ("수성구", "범어동"),
    ("동구", "신암동"),
]
LAT_BOX, LON_BOX = (35.75, 35.95), (128.45, 128.75)  # Daegu


def side_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """A camera table in the layout of daegu_cctv.csv, with missing values in several columns."""
    rng = np.random.default_rng(seed)
    where = rng.integers(0, len(DONGS), n)
    lots = [f"{rng.integers(1, 2000)}-{rng.integers(1, 40)}" for _ in range(n)]
    frame = pd.DataFrame(
        {
            "관리번호": [f"{i:05d}" for i in range(n)],  # leading zeros: stays text
            "시군구명": [DONGS[w][0] for w in where],
            "소재지지번주소": [
                f"대구광역시 {DONGS[w][0]} {DONGS[w][1]} {lot}" for w, lot in zip(where, lots, strict=True)
            ],
            "위도": rng.uniform(*LAT_BOX, n).round(8),
            "경도": rng.uniform(*LON_BOX, n).round(7),
            "제한속도": rng.choice([30, 50, 60, 80], n).astype(float),
            "설치연도": rng.integers(2005, 2021, n).astype(float),
            "점수": rng.normal(50, 15, n).round(3),
            "단속구분": rng.choice(["과속", "신호", "주차", "과속;신호"], n),
            "설치일자": pd.to_datetime("2015-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D"),
            "사고일시": pd.to_datetime("2012-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365 * 24, n), unit="h"),
            "비고": [f"설치 장소 {i} 번, 메모" for i in range(n)],
        }
    )
    frame.loc[rng.random(n) < 0.1, "제한속도"] = np.nan
    frame.loc[rng.random(n) < 0.05, "점수"] = np.nan
    frame.loc[rng.random(n) < 0.2, "단속구분"] = None
    frame.loc[rng.random(n) < 0.03, "사고일시"] = pd.NaT
    frame.loc[rng.random(n) < 0.02, ["위도", "경도"]] = np.nan
    return frame


def write_csv(frame: pd.DataFrame, path: Path, *, encoding: str = "cp949", sep: str = ",") -> Path:
    """The frame as an uploaded CSV: dates as ISO text (사고일시 as "YYYY-MM-DD HH", the Dacon way)."""
    text = frame.copy()
    for name in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[name]):
            text[name] = text[name].dt.strftime("%Y-%m-%d %H" if name == "사고일시" else "%Y-%m-%d")
        elif pd.api.types.is_float_dtype(text[name]) and name in ("제한속도", "설치연도"):
            text[name] = text[name].astype("Int64")
    text.to_csv(path, index=False, encoding=encoding, sep=sep)
    return path


def as_parquet(frame: pd.DataFrame, folder: Path, name: str = "table", **csv_options: str) -> Path:
    """The frame through the upload path: CSV written, read back, stored as Parquet."""
    csv = write_csv(frame, folder / f"{name}.csv", **csv_options)
    target = folder / f"{name}.parquet"
    write_parquet(read_csv_table(csv), target)
    return target


def accidents_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Accidents in the Dacon layout's columns that per-동 joins use, with the (구, 동) each was generated in."""
    rng = np.random.default_rng(seed)
    where = rng.integers(0, len(DONGS), n)
    deaths = rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], n)
    serious = rng.choice([0, 0, 0, 1, 2], n)
    minor = rng.integers(0, 4, n)
    reported = rng.integers(0, 2, n)
    districts = [f"대구광역시 {DONGS[w][0]} {DONGS[w][1]}" for w in where]
    truth_gu = [DONGS[w][0] for w in where]
    truth_dong: list[str | None] = [DONGS[w][1] for w in where]
    for i in range(0, n, 97):  # a 시군구 without its 동, as in the real files
        districts[i] = f"대구광역시 {truth_gu[i]}"
        truth_dong[i] = None
    frame = pd.DataFrame(
        {
            "ID": [f"ACCIDENT_{i:06d}" for i in range(n)],
            "사고일시": [
                f"2019-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} {rng.integers(0, 24):02d}" for _ in range(n)
            ],
            "시군구": districts,
            "사망자수": deaths,
            "중상자수": serious,
            "경상자수": minor,
            "부상자수": reported,
            "ECLO": 10 * deaths + 5 * serious + 3 * minor + reported,
        }
    )
    frame["_gu"], frame["_dong"] = truth_gu, truth_dong
    return frame
