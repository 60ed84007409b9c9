"""Folium maps that draw without internet: Leaflet from the dashboard's own static files (never a CDN), tiles
from MAP_TILES_URL or none, and only vector shapes (circle markers), which need no icon fonts or images."""

from __future__ import annotations

import folium

from frontend.settings import get_settings

LEVEL_COLORS = {"free": "#2e7d32", "moderate": "#f9a825", "heavy": "#ef6c00", "severe": "#c62828"}
NO_DATA_COLOR = "#78909c"


def base_map(center: tuple[float, float], zoom: int) -> folium.Map:
    settings = get_settings()
    tiles = settings.map_tiles_url.strip()
    if tiles.lower() == "none":
        area = folium.Map(location=center, zoom_start=zoom, tiles=None, control_scale=True)
    else:
        area = folium.Map(location=center, zoom_start=zoom, tiles=tiles, attr=settings.map_tiles_attribution,
                          control_scale=True)  # fmt: skip
    assets = settings.map_assets_url.rstrip("/")
    # Instance attributes: st_folium loads exactly these. Popups need jQuery; Map's other class defaults
    # (Bootstrap, icon fonts, all from CDNs) are not needed by circle markers, tooltips and popups.
    area.default_js = [("leaflet", f"{assets}/leaflet.js"), ("jquery", f"{assets}/jquery.min.js")]
    area.default_css = [("leaflet_css", f"{assets}/leaflet.css")]
    return area
