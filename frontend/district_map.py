"""The risk map's districts: where each of Daegu's 구/군 is drawn, how big its circle is, and where its label sits so
that no label lands on a neighbour's circle (the city-centre districts are a few pixels apart at the map's zoom)."""

from __future__ import annotations

import folium

from frontend.labels import ENGLISH

# Daegu's 구/군 at their district offices.
DISTRICT_CENTRES = {
    "중구": (35.8693, 128.6062), "동구": (35.8866, 128.6356), "서구": (35.8718, 128.5591),
    "남구": (35.8460, 128.5975), "북구": (35.8858, 128.5828), "수성구": (35.8582, 128.6305),
    "달서구": (35.8299, 128.5326), "달성군": (35.7746, 128.4314),
}  # fmt: skip
# Where each district's label sits beside its circle: away from its neighbours, not onto them.
LABEL_SIDES = {"중구": "right", "동구": "right", "서구": "left", "남구": "bottom", "북구": "top", "수성구": "right",
               "달서구": "left", "달성군": "right"}  # fmt: skip
LABEL_PLACES = {
    "right": "translate({gap}px,-50%)", "left": "translate(calc(-100% - {gap}px),-50%)",
    "top": "translate(-50%,calc(-100% - {gap}px))", "bottom": "translate(-50%,{gap}px)",
}  # fmt: skip
# Every district and its label in view on a map 480 px high and 450 px wide or more: the centre sits east of the
# districts' middle, since the labels of the eastern ones run to the right.
CENTRE, ZOOM = (35.835, 128.565), 11


def radius(answer: dict) -> float:
    """A circle's radius in pixels: 6 at 0.6 × the city's average or less, up to 11 at 1.2 × or more (bigger ones
    would meet in the city centre)."""
    return 6 + 5 * min(max((answer["relative_risk"] - 0.6) / 0.6, 0.0), 1.0)


def district_label(name: str, answer: dict) -> folium.DivIcon:
    """'Jung-gu 24%' beside the district's circle, on the side LABEL_SIDES gives it, with a halo to read over the
    map."""
    place = LABEL_PLACES[LABEL_SIDES.get(name, "right")].format(gap=round(radius(answer)) + 3)
    return folium.DivIcon(
        html=f'<div style="position:absolute;font:600 11px sans-serif;white-space:nowrap;transform:{place};'
        f'text-shadow:0 0 3px #fff,0 0 3px #fff,0 0 3px #fff">{ENGLISH.get(name, name)} {answer["p_severe"]:.0%}'
        "</div>",
        icon_size=(0, 0),
    )
