"""The risk map's labels: each beside its own circle, none on a neighbour's circle or label, all in view."""

from __future__ import annotations

import math
import re

import pytest

from frontend.district_map import CENTRE, DISTRICT_CENTRES, LABEL_SIDES, ZOOM, district_label, radius
from frontend.labels import ENGLISH

pytestmark = pytest.mark.unit

CHAR_PX, LINE_PX = 7.0, 14.0  # 11 px bold sans-serif: a generous width per character, and the line's height
MAP_PX = (450, 480)  # the smallest map the page draws every district on (half a laptop screen's width)
LARGEST = {"relative_risk": 2.0, "p_severe": 0.55}  # the biggest circle and the longest percentage


def pixels(lat: float, lon: float) -> tuple[float, float]:
    """Web Mercator pixel coordinates at the map's zoom."""
    scale = 256 * 2**ZOOM
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2
    return (lon + 180) / 360 * scale, y * scale


def label_box(name: str) -> tuple[float, float, float, float]:
    """left, top, right, bottom of the district's label, as the page places it."""
    x, y = pixels(*DISTRICT_CENTRES[name])
    width, gap = CHAR_PX * len(f"{ENGLISH[name]} 55%"), round(radius(LARGEST)) + 3
    side = LABEL_SIDES[name]
    if side == "right":
        return x + gap, y - LINE_PX / 2, x + gap + width, y + LINE_PX / 2
    if side == "left":
        return x - gap - width, y - LINE_PX / 2, x - gap, y + LINE_PX / 2
    if side == "top":
        return x - width / 2, y - gap - LINE_PX, x + width / 2, y - gap
    return x - width / 2, y + gap, x + width / 2, y + gap + LINE_PX


def meets_circle(box: tuple[float, float, float, float], centre: tuple[float, float], r: float) -> bool:
    nearest_x = min(max(centre[0], box[0]), box[2])
    nearest_y = min(max(centre[1], box[1]), box[3])
    return math.hypot(centre[0] - nearest_x, centre[1] - nearest_y) < r


def test_no_label_lands_on_another_district_or_its_label() -> None:
    assert set(LABEL_SIDES) == set(DISTRICT_CENTRES)
    r = radius(LARGEST)
    boxes = {name: label_box(name) for name in DISTRICT_CENTRES}
    for name, box in boxes.items():
        for other, where in DISTRICT_CENTRES.items():
            assert not meets_circle(box, pixels(*where), r + 1), f"{ENGLISH[name]}'s label on {ENGLISH[other]}"
        for other, other_box in boxes.items():
            apart = box[2] <= other_box[0] or other_box[2] <= box[0] or box[3] <= other_box[1] or other_box[3] <= box[1]
            assert other == name or apart, f"{ENGLISH[name]}'s label on {ENGLISH[other]}'s"


def test_every_circle_and_label_is_in_view() -> None:
    cx, cy = pixels(*CENTRE)
    half_w, half_h = MAP_PX[0] / 2, MAP_PX[1] / 2
    for name in DISTRICT_CENTRES:
        left, top, right, bottom = label_box(name)
        assert cx - half_w < left and right < cx + half_w and cy - half_h < top and bottom < cy + half_h, name


def test_the_label_names_the_district_in_english_with_its_chance() -> None:
    html = district_label("중구", {"relative_risk": 0.73, "p_severe": 0.242}).options["html"]
    assert re.search(r">Jung-gu 24%</div>$", html) and "translate(" in html
