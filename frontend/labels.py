"""What the pages show of a value: labels with English hints, the risk levels' colours and the risk badge."""

from __future__ import annotations

import math
from typing import Any

RISK_COLORS = {"low": "#2e7d32", "moderate": "#f9a825", "high": "#ef6c00", "severe": "#c62828"}
ENGLISH = {
    "맑음": "clear", "흐림": "cloudy", "비": "rain", "눈": "snow", "안개": "fog", "기타": "other",
    "건조": "dry", "젖음/습기": "wet", "서리/결빙": "frost/ice", "적설": "snow-covered", "침수": "flooded",
    "차대사람": "vehicle-pedestrian", "차대차": "vehicle-vehicle", "차량단독": "single vehicle",
    "출근시간대": "morning rush 7-9h", "퇴근시간대": "evening rush 17-19h", "심야": "late night 22-5h",
    "일반시간대": "regular hours", "교차로": "intersection", "교차로안": "inside", "교차로부근": "near",
    "교차로횡단보도내": "on a crosswalk", "횡단보도상": "on a crosswalk", "횡단보도부근": "near a crosswalk",
    "낮": "daytime", "밤": "night", "새벽": "dawn", "아침": "morning", "저녁": "evening", "단일로": "road segment",
    "고가도로위": "overpass", "교량": "bridge",
    "지하차도(도로)내": "underpass", "터널": "tunnel", "미분류": "unclassified", "주차장": "parking lot",
    "월요일": "Mon", "화요일": "Tue", "수요일": "Wed", "목요일": "Thu", "금요일": "Fri", "토요일": "Sat",
    "일요일": "Sun", "중구": "Jung-gu", "동구": "Dong-gu", "서구": "Seo-gu", "남구": "Nam-gu", "북구": "Buk-gu",
    "수성구": "Suseong-gu", "달서구": "Dalseo-gu", "달성군": "Dalseong-gun",
}  # fmt: skip


def label(value: str) -> str:
    """'교차로 - 교차로안' -> '교차로 - 교차로안 (intersection - inside)'."""
    parts = [part.strip() for part in value.replace(" - ", "|").split("|")]
    hints = [ENGLISH.get(part) for part in parts]
    if not any(hints):
        return value
    return f"{value} ({' - '.join(h or p for h, p in zip(hints, parts, strict=True))})"


def plural(count: int, noun: str) -> str:
    """'1 row', '114 rows', '1,000 rows'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def risk_badge(answer: dict[str, Any]) -> str:
    """The answer's risk level over its chance of a severe outcome and its relative risk."""
    color = RISK_COLORS.get(answer["risk_level"], "#555")
    relative = math.floor(answer["relative_risk"] * 100) / 100  # 0.7996 is "low": shown as 0.79, not 0.80
    return (
        f'<div style="padding:1rem 1.5rem;border-radius:0.6rem;background:{color};color:white;display:inline-block">'
        f'<div style="font-size:0.9rem;opacity:0.85">chance of a death or serious injury</div>'
        f'<div style="font-size:3rem;font-weight:700;line-height:1.1">{answer["p_severe"]:.0%}</div>'
        f'<div style="font-size:1rem">{relative:.2f} × the city\'s average</div>'
        f'<div style="font-size:1.1rem;text-transform:uppercase;letter-spacing:0.05em">{answer["risk_level"]} risk'
        f"</div></div>"
    )
