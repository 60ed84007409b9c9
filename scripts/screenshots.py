"""Render every dashboard page in headless Chromium (Debian's `chromium`) and save PNG screenshots.

Usage: python scripts/screenshots.py [--url http://127.0.0.1:8501] [--api http://127.0.0.1:8000] [--out screenshots]
       [--api-key KEY]   (default: $API_KEY, the key `make run` prints; none needed with AUTH_ENABLED=false)
Needs a running stack (`make run`). Each page is opened, the form or batch on it is exercised where that is what
the page is for, and the page is captured once Streamlit has finished running it.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="to pick sensors for the readings upload")
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="for --api (default: $API_KEY)")
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
        browser.close()
    for path in sorted(args.out.glob("*.png")):
        print(path)


if __name__ == "__main__":
    main()
