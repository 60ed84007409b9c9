"""How long the dashboard's Network page takes to draw every sensor once the API has answered.

Against a running stack with readings loaded (`make run`, then e.g. the METR-LA week through the Readings page or
POST /api/traffic/readings). Per round, median of --rounds (the first round, a cold start, is reported apart):
1. baseline: the page's two API calls (GET /api/traffic/sensors, GET /api/traffic/forecast) made directly;
2. the page's script under Streamlit's AppTest: its own "drawn in" figure (from the API's answer to the map
   element built) and the whole run;
3. in headless Chromium (playwright, when installed): from navigation to the page's script done (its caption
   shown) and to every sensor's marker painted in the map.

Usage: python bench/bench_network_page.py [--api http://127.0.0.1:8000] [--url http://127.0.0.1:8501] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from results import run_line, write_section  # noqa: E402

METHOD = (
    "The dashboard's Network page, `python bench/bench_network_page.py` against a running stack with readings loaded "
    "(no make target). Baseline: the page's two API calls (`GET /api/traffic/sensors`, `GET /api/traffic/forecast`) "
    "made directly. The page's script under Streamlit's AppTest: its own \"drawn in\" figure (from the API's answer "
    "to the map element built) and the whole run. Headless Chromium (playwright): from navigation to the script done "
    "and to every sensor's marker painted. Medians of {rounds} rounds after a first, cold one; the API's own caches "
    "as the running stack has them."
)


def api_calls(api: str) -> tuple[float, int]:
    started = time.perf_counter()
    sensors = httpx.get(f"{api}/api/traffic/sensors", timeout=60).json()
    httpx.get(f"{api}/api/traffic/forecast", timeout=60).raise_for_status()
    return time.perf_counter() - started, len(sensors)


def apptest_round(api: str) -> tuple[float, float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from frontend.settings import get_settings

    os.environ["API_URL"] = api
    get_settings.cache_clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(ROOT / "frontend" / "app.py"), default_timeout=120)
    app.run()
    started = time.perf_counter()
    app.switch_page("views/network.py").run()
    whole = time.perf_counter() - started
    assert not app.exception, [e.message for e in app.exception]
    caption = next(c.value for c in app.caption if "drawn in" in c.value)
    drawn = float(re.search(r"drawn in ([\d.]+) s", caption).group(1))  # type: ignore[union-attr]
    return drawn, whole


def browser_rounds(url: str, sensors: int, rounds: int) -> list[tuple[float, float]]:
    """(navigation to the page's script done, to every marker painted) per round."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            started = time.perf_counter()
            page.goto(f"{url.rstrip('/')}/network")
            page.wait_for_selector("text=drawn in", timeout=120_000)
            script_done = time.perf_counter() - started
            frame = page.wait_for_selector("iframe[title='streamlit_folium.st_folium']", timeout=120_000)
            inner = frame.content_frame()
            assert inner is not None
            inner.wait_for_function(f"() => document.querySelectorAll('path.leaflet-interactive').length >= {sensors}",
                                    timeout=120_000, polling=50)  # fmt: skip
            times.append((script_done, time.perf_counter() - started))
            page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls = [api_calls(args.api) for _ in range(args.rounds + 1)]
    sensors = calls[0][1]
    rounds = [apptest_round(args.api) for _ in range(args.rounds + 1)]
    print(f"{sensors} sensors; {os.cpu_count()} cores; median of {args.rounds} rounds after a first (cold) one")
    direct = statistics.median(c[0] for c in calls[1:])
    print(f"API calls of the page (sensors + network forecast), direct: {direct:.3f} s (first {calls[0][0]:.3f} s)")
    print(f"AppTest: drawn after the API answered {statistics.median(r[0] for r in rounds[1:]):.3f} s (first "
          f"{rounds[0][0]:.3f} s); whole script run {statistics.median(r[1] for r in rounds[1:]):.3f} s")  # fmt: skip
    drawn, whole = statistics.median(r[0] for r in rounds[1:]), statistics.median(r[1] for r in rounds[1:])
    table = [
        f"| what ({sensors} sensors) | median |",
        "|---|---|",
        f"| baseline: the page's two API calls, made directly | {direct:.2f} s |",
        f"| AppTest: map drawn after the API answered | {drawn:.2f} s |",
        f"| AppTest: the whole script run | {whole:.2f} s |",
    ]
    try:
        times = browser_rounds(args.url, sensors, args.rounds + 1)
    except ImportError:
        print("Chromium: not measured (pip install '.[screenshots]' for playwright)")
        table.append("| Chromium | not measured (playwright not installed) |")
        write_results(args.rounds, table)
        return
    done, painted = statistics.median(t[0] for t in times[1:]), statistics.median(t[1] for t in times[1:])
    print(f"Chromium: navigation to the page's script done (API answered, map sent) {done:.3f} s; to {sensors} "
          f"markers painted {painted:.3f} s; so the map draws {painted - done:.3f} s after the script "
          f"(first round {times[0][0]:.3f} / {times[0][1]:.3f} s)")  # fmt: skip
    table += [
        f"| Chromium: navigation to the page's script done | {done:.2f} s |",
        f"| Chromium: navigation to every marker painted | {painted:.2f} s |",
        f"| Chromium: markers painted after the script was done | {painted - done:.2f} s |",
    ]
    write_results(args.rounds, table)


def write_results(rounds: int, table: list[str]) -> None:
    rows = "\n".join(table)
    write_section("bench_network_page", f"{METHOD.format(rounds=rounds)} {run_line()}\n\n{rows}\n")


if __name__ == "__main__":
    main()
