"""Folium maps that draw without internet: Leaflet (and Leaflet.markercluster) from the dashboard's own static
files (never a CDN), tiles from MAP_TILES_URL or none, and only vector shapes (circle markers), which need no icon
fonts or images."""

from __future__ import annotations

import folium
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

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


class PointLayer(JSCSSMixin, MacroElement):
    """Many points as circle markers built in the browser from one compact array (`[lat, lon, colour, label]` per
    point), clustered by Leaflet.markercluster (served with Leaflet, never from a CDN) when `cluster` is set. A
    label is set as text, never as HTML: a dataset's values cannot inject markup into the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = (function () {
                var data = {{ this.data|tojson }};
                var markers = [];
                for (var i = 0; i < data.length; i++) {
                    var row = data[i];
                    var marker = L.circleMarker([row[0], row[1]], {
                        radius: {{ this.radius }}, color: "#263238", weight: 1, fillColor: row[2], fillOpacity: 0.85
                    });
                    if (row[3] !== null && row[3] !== "") {
                        var tip = document.createElement("span");
                        tip.textContent = String(row[3]);
                        marker.bindTooltip(tip);
                    }
                    markers.push(marker);
                }
                {% if this.cluster %}
                var layer = L.markerClusterGroup({chunkedLoading: true});
                layer.addLayers(markers);
                {% else %}
                var layer = L.featureGroup(markers);
                {% endif %}
                layer.addTo({{ this._parent.get_name() }});
                return layer;
            })();
        {% endmacro %}
        """
    )

    def __init__(self, points: list[tuple[float, float, str, str]], *, cluster: bool = False, radius: int = 5):
        super().__init__()
        self._name = "PointLayer"
        self.data = [[lat, lon, color, label] for lat, lon, color, label in points]
        self.cluster = cluster
        self.radius = int(radius)
        # Instance attributes, as base_map's: st_folium loads exactly these (none for plain circle markers).
        assets = get_settings().map_assets_url.rstrip("/")
        self.default_js = [("markercluster", f"{assets}/leaflet.markercluster.js")] if cluster else []
        self.default_css = (
            [
                ("markercluster_css", f"{assets}/MarkerCluster.css"),
                ("markercluster_default_css", f"{assets}/MarkerCluster.Default.css"),
            ]
            if cluster
            else []
        )


def fit(area: folium.Map, points: list[tuple[float, float]], share: float = 0.9) -> None:
    """Zoom the map to the box of the middle `share` of the points (of all, when few): a handful of far-off rows
    (another county, a wrong coordinate) does not shrink the rest to a speck."""
    if not points:
        return
    lats, lons = sorted(p[0] for p in points), sorted(p[1] for p in points)
    cut = int(len(points) * (1 - share) / 2) if len(points) >= 50 else 0
    low, high = cut, len(points) - 1 - cut
    area.fit_bounds([[lats[low], lons[low]], [lats[high], lons[high]]])
