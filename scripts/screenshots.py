"""Render every dashboard page in headless Chromium (Debian's `chromium`) and save PNG screenshots.

Usage: python scripts/screenshots.py [--url http://127.0.0.1:8501] [--api http://127.0.0.1:8000] [--out screenshots]
       [--api-key KEY]   (default: $API_KEY, the key `make run` prints; none needed with AUTH_ENABLED=false)
       [--daegu ../shared/data/daegu]   (the real Daegu files the Explore page is shown with, when they are there)
       The Assistant page asks its question with the Anthropic key of $ANTHROPIC_API_KEY (typed into the page's
       sidebar, never printed); without one it is captured as it opens (its key field, the past conversations).
Needs a running stack (`make run`). Each page is opened, the form or batch on it is exercised where that is what
the page is for, and the page is captured once Streamlit has finished running it.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import APIRequestContext, Page, sync_playwright

from backend.ml.eclo.datagen import write_dacon_csv

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
FIELDS = ["weather", "road_surface", "road_type", "accident_type", "time_period", "district", "day_of_week",
          "accident_hour", "accident_year", "accident_month", "accident_day"]  # fmt: skip


def settle(page: Page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit's script run is over (no 'running' indicator) and the page has content."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms, polling=250
    )
    page.wait_for_timeout(1500)


def capture(page: Page, path: Path) -> None:
    """The whole page, however long: Streamlit scrolls inside its main section, which a full-page screenshot of
    the window does not reach, so the window is made as tall as that section for the shot."""
    size = page.viewport_size or {"width": 1440, "height": 1000}
    height = page.evaluate(
        "() => { const main = document.querySelector('[data-testid=\"stMain\"]');"
        " return main ? main.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(height))})
    page.wait_for_timeout(2000)  # the charts and maps redraw at the new size
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(size)


def sample_csv(rows: int = 100) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    weathers = ["맑음", "비", "흐림"]
    districts = ["중구", "수성구", "달서구", "대구광역시 북구 산격동", "동구"]
    for i in range(rows):
        writer.writerow([weathers[i % 3], "건조", "교차로", "차대차", "", districts[i % 5], "월요일", i % 24, 2024, 12,
                         1 + i % 28])  # fmt: skip
    return out.getvalue().encode("utf-8")


def dacon_csv(rows: int = 3000) -> bytes:
    """Generated accidents in the Dacon layout, CP949-encoded, every 50th with an hour of 25."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_dacon_csv(Path(folder) / "accidents.csv", rows, seed=5, encoding="cp949")
        lines = path.read_bytes().decode("cp949").splitlines()
    for i in range(1, len(lines), 50):
        lines[i] = re.sub(r",(\d{4}-\d{2}-\d{2}) \d{2},", r",\1 25,", lines[i], count=1)
    return ("\r\n".join(lines) + "\r\n").encode("cp949")


def wide_csv(page: Page, api: str, key: str | None, steps: int = 24) -> bytes:
    """Two hours of the METR-LA wide layout for three registered sensors, one cell out of range."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    sensors = [s["sensor_id"] for s in page.request.get(f"{api}/api/traffic/sensors", headers=headers).json()[:3]]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["", *sensors])
    for step in range(steps):
        writer.writerow([f"2012-02-01 {step // 12:02d}:{step % 12 * 5:02d}:00", *[50 + step % 7 + i for i in
                         range(len(sensors))]])  # fmt: skip
    writer.writerow(["2012-02-01 02:00:00", 200, 55, 56])
    return out.getvalue().encode("utf-8")


# The real Daegu files (outside the project, never copied into it): side tables with coordinates and addresses, and
# the accident file (127,826 accidents; its first ACCIDENT_ROWS are uploaded).
SIDE_TABLES = {"daegu_cctv.csv": "Daegu speed cameras", "daegu_child_protection_zone.csv": "Daegu child zones"}
ACCIDENTS = ("accidents_2007_2015.csv.gz", "Daegu accidents 2007-2015 (first 40,000)")
ACCIDENT_ROWS = 40_000


def uploaded(api: APIRequestContext, name: str, filename: str, content: bytes, kind: str) -> str:
    """The id of the dataset called `name`: the one already there, else a new upload of `content`."""
    listed = api.get("/api/datasets", params={"size": 100})
    assert listed.ok, listed.text()
    for dataset in listed.json()["items"]:
        if dataset["name"] == name:
            return dataset["id"]
    answer = api.post(
        "/api/datasets",
        multipart={"file": {"name": filename, "mimeType": "text/csv", "buffer": content}, "name": name, "kind": kind},
        timeout=300_000,
    )
    assert answer.ok, answer.text()
    return answer.json()["id"]


def first_rows(path: Path, rows: int) -> bytes:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return "".join(line for _, line in zip(range(rows + 1), handle, strict=False)).encode("utf-8")


def explore(page: Page, base: str, api: APIRequestContext, daegu: Path, out: Path) -> None:
    """The Explore page over the real side tables (map, charts, the cameras near the child zones) and the accident
    file (each 동's accidents beside the speed cameras)."""
    if not all((daegu / name).exists() for name in [*SIDE_TABLES, ACCIDENTS[0]]):
        print(f"skipped the Explore page: the Daegu files are not in {daegu}")
        return
    sides = {uploaded(api, name, filename, (daegu / filename).read_bytes(), "table"): name
             for filename, name in SIDE_TABLES.items()}  # fmt: skip
    cameras = next(i for i, name in sides.items() if name == "Daegu speed cameras")
    accidents = uploaded(api, ACCIDENTS[1], "accidents.csv", first_rows(daegu / ACCIDENTS[0], ACCIDENT_ROWS), "eclo")

    page.goto(f"{base}/explore?dataset={cameras}")
    settle(page)
    page.wait_for_timeout(4000)  # the maps' frames draw after the script run
    capture(page, out / "10-explore-table.png")
    page.get_by_text("box", exact=True).click()  # the chosen column's box, from its quantile summary
    settle(page)
    page.get_by_text("Charts", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=out / "11-explore-box.png")

    page.get_by_role("link", name="Datasets", exact=True).click()  # the same session: the Datasets page shows the table
    settle(page)
    capture(page, out / "13-datasets-table.png")

    page.goto(f"{base}/explore?dataset={accidents}")
    settle(page)
    page.wait_for_timeout(4000)
    capture(page, out / "12-explore-accidents.png")


ASSISTANT_QUESTION = ("Which Daegu district is riskiest for an accident on a rainy weekday evening, and how is the "
                      "road network doing right now?")  # fmt: skip


def assistant(page: Page, base: str, out: Path, llm_key: str | None) -> None:
    """The Assistant page: with an LLM key, a question answered with the tools (the first step opened, its chart
    shown); without one, the page as it opens."""
    page.goto(f"{base}/assistant")
    settle(page)
    if llm_key:
        field = page.get_by_label("Anthropic API key", exact=True).and_(page.locator("input"))
        field.fill(llm_key)
        field.press("Enter")
        settle(page)
        chat = page.get_by_placeholder("Ask about traffic, accidents or a dataset")
        chat.fill(ASSISTANT_QUESTION)
        chat.press("Enter")
        # the saved answer's usage caption, or the refusal (a wrong key: the page shows the provider's message)
        page.wait_for_function(
            "() => /tokens in|was not answered/.test(document.body.innerText)", timeout=300_000, polling=500
        )
        settle(page)
        steps = page.locator("[data-testid='stChatMessage'] [data-testid='stExpander'] summary")
        if steps.count():
            steps.first.click()
            settle(page)
    capture(page, out / "14-assistant.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="to pick sensors for the readings upload")
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="for --api (default: $API_KEY)")
    parser.add_argument("--daegu", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/daegu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    base = args.url.rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})

        page.goto(f"{base}/")
        settle(page)
        page.get_by_role("button", name="Predict").click()
        settle(page)
        page.screenshot(path=args.out / "1-predict.png", full_page=True)

        page.goto(f"{base}/batch")
        settle(page)
        page.locator("input[type=file]").set_input_files(
            {"name": "rows.csv", "mimeType": "text/csv", "buffer": sample_csv()}
        )
        settle(page)
        page.get_by_role("button", name="Score 100 rows").click()
        page.wait_for_selector("text=Batch success", timeout=60_000)
        settle(page)
        page.screenshot(path=args.out / "2-batch.png", full_page=True)

        page.goto(f"{base}/datasets")
        settle(page)
        if not page.get_by_label("Name").is_visible():  # the expander is open when there is no dataset yet
            page.get_by_text("Upload a file", exact=True).click()
        page.locator("input[type=file]").set_input_files(
            {"name": "daegu_accidents.csv", "mimeType": "text/csv", "buffer": dacon_csv()}
        )
        page.get_by_label("Name").fill("Generated accidents (CP949)")
        page.get_by_role("button", name="Upload and check").click()
        page.wait_for_selector("text=rows are valid", timeout=60_000)
        settle(page)
        page.get_by_role("button", name="Score", exact=False).first.click()
        page.wait_for_selector("text=Scored", timeout=120_000)
        settle(page)
        page.screenshot(path=args.out / "2b-datasets.png", full_page=True)

        page.goto(f"{base}/risk-map")
        settle(page)
        page.wait_for_timeout(3000)  # the map's iframe draws after the script run
        page.screenshot(path=args.out / "3-risk-map.png", full_page=True)

        page.goto(f"{base}/network")
        settle(page)
        page.wait_for_timeout(3000)
        page.screenshot(path=args.out / "5-network.png", full_page=True)
        page.get_by_text("+60 min", exact=True).click()
        settle(page)
        page.wait_for_timeout(3000)
        page.screenshot(path=args.out / "6-network-60.png", full_page=True)

        page.goto(f"{base}/sensor")
        settle(page)
        neighbours = page.get_by_text("Show its", exact=False)
        if neighbours.count():  # only a sensor with neighbours offers them
            neighbours.first.click()
            settle(page)
        page.screenshot(path=args.out / "7-sensor.png", full_page=True)

        page.goto(f"{base}/readings")
        settle(page)
        page.locator("input[type=file]").set_input_files(
            {"name": "wide.csv", "mimeType": "text/csv", "buffer": wide_csv(page, args.api.rstrip("/"), args.api_key)}
        )
        settle(page)
        page.get_by_role("button", name="Send", exact=False).click()
        page.wait_for_selector("text=accepted", timeout=60_000)
        settle(page)
        page.screenshot(path=args.out / "8-readings.png", full_page=True)

        page.goto(f"{base}/system")
        settle(page)
        page.screenshot(path=args.out / "4-system.png", full_page=True)

        page.goto(f"{base}/keys")
        settle(page)
        page.screenshot(path=args.out / "9-keys.png", full_page=True)

        assistant(page, base, args.out, os.environ.get("ANTHROPIC_API_KEY"))

        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        api = playwright.request.new_context(base_url=args.api.rstrip("/"), extra_http_headers=headers)
        explore(page, base, api, args.daegu, args.out)
        api.dispose()
        browser.close()
    for path in sorted(args.out.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
