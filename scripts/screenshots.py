"""Render every dashboard page in headless Chromium (Debian's `chromium`) and save full-height PNG screenshots.

Usage: python scripts/screenshots.py [--url URL] [--api URL] [--api-key KEY] [--out screenshots] [--daegu DIR]

With no option it finds the stack `make run` started from the same settings (env vars or `.env`): the dashboard at
API_HOST:STREAMLIT_PORT, the API at API_HOST:API_PORT, and the user key `make run` keeps in DATA_DIR/keys/user.key
(or $API_KEY). That key, which holds the admin scope, is typed into the pages that ask for an admin key (Datasets,
Readings, API keys). Before the pages are shot it loads what they show: the congestion model's sample readings
when the network has none (or only the demo feed's), a generated accident file (uploaded once and scored) and a
100-row batch. With the real Daegu files in --daegu (default ../shared/data/daegu) the Explore page shows them.
The Assistant page asks its question with $ANTHROPIC_API_KEY (typed into the page, never printed); without one it
is captured as it opens.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import APIRequestContext, Page, Playwright, sync_playwright

from backend.core.config import get_settings
from backend.ml.eclo.datagen import write_dacon_csv

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
FIELDS = ["weather", "road_surface", "road_type", "accident_type", "time_period", "district", "day_of_week",
          "accident_hour", "accident_year", "accident_month", "accident_day"]  # fmt: skip
WIDTH, HEIGHT = 1440, 1000
GENERATED = "Generated accidents (CP949)"  # the accident file this script uploads once and reuses after
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


class Stop(Exception):
    """What the user must do for the script to run, said plainly."""


def stack_defaults() -> tuple[str, str, Path]:
    """The dashboard's and the API's URLs and the user key's file, from the settings `make run` reads."""
    settings = get_settings()
    host = "127.0.0.1" if settings.api_host in WILDCARD_HOSTS else settings.api_host
    return (
        f"http://{host}:{settings.streamlit_port}",
        f"http://{host}:{settings.api_port}",
        settings.data_dir / "keys" / "user.key",
    )


def check_stack(playwright: Playwright, url: str, api: str) -> None:
    probe = playwright.request.new_context()
    try:
        for name, address, variable in (("API", f"{api}/health/live", "API_PORT"),
                                        ("dashboard", f"{url}/_stcore/health", "STREAMLIT_PORT")):  # fmt: skip
            try:
                answer = probe.get(address, timeout=5_000)
            except Exception as exc:  # noqa: BLE001 - Playwright raises its own Error for a refused connection
                raise Stop(
                    f"no {name} answers at {address} ({str(exc).splitlines()[0]}). Start the stack with `make run`; "
                    f"if it runs elsewhere, set {variable} (and API_HOST) as you did for `make run`, or pass "
                    f"--{'api' if name == 'API' else 'url'}."
                ) from exc
            if not answer.ok:
                raise Stop(f"the {name} at {address} answered {answer.status}: is the stack healthy (`make run`)?")
    finally:
        probe.dispose()


def admin_key(playwright: Playwright, api: str, given: str | None, key_file: Path) -> str | None:
    """The key to call the API and sign in as admin with: --api-key / $API_KEY, else the user key `make run`
    keeps; None when the API asks for no key (AUTH_ENABLED=false). Checked to hold the admin scope."""
    key = given or (key_file.read_text().strip() if key_file.exists() else None)
    probe = playwright.request.new_context(base_url=api)
    try:
        if key is None:
            if probe.get("/api/keys/me").status == 401:
                raise Stop(
                    f"the API asks for a key and there is none: no $API_KEY, and no {key_file} (where `make run` keeps "
                    "the user key under DATA_DIR). Set DATA_DIR to the folder `make run` used, or API_KEY to a key "
                    "with the admin scope."
                )
            return None
        answer = probe.get("/api/keys/me", headers={"Authorization": f"Bearer {key}"})
        source = "$API_KEY" if given else str(key_file)
        if answer.status == 401:
            raise Stop(f"the API refuses the key of {source} ({answer.json().get('message', answer.text())}): set "
                       "API_KEY to a valid key with the admin scope, or DATA_DIR to the folder of this stack's "
                       "`make run`.")  # fmt: skip
        if not answer.ok:
            raise Stop(f"the API answered {answer.status} to GET /api/keys/me: {answer.text()[:200]}")
        if "admin" not in answer.json().get("scopes", []):
            raise Stop(f"the key of {source} lacks the admin scope, which the Datasets, Readings and API keys pages "
                       "ask for: set API_KEY to the key `make run` prints.")  # fmt: skip
        return key
    finally:
        probe.dispose()


def settle(page: Page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit's script run is over (no 'running' indicator) and the page has content."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms, polling=250
    )
    page.wait_for_timeout(1500)
    failure = page.locator("[data-testid='stException']")
    if failure.count():  # a traceback instead of the page: a dashboard older than its code, or a bug
        raise Stop(f"{page.url} raised {failure.first.inner_text().splitlines()[0]} (restart `make run` if the "
                   "dashboard's code changed since it started)")  # fmt: skip


def content_height(page: Page) -> int:
    """The taller of the page's two scrolling parts: the main section and the sidebar (the Assistant's settings)."""
    return int(page.evaluate(
        "() => Math.max(document.documentElement.scrollHeight, ...['stMain', 'stSidebarContent'].map("
        "id => (document.querySelector(`[data-testid=\"${id}\"]`) || {scrollHeight: 0}).scrollHeight))"
    ))  # fmt: skip


def capture(page: Page, path: Path) -> None:
    """The whole page, however long: Streamlit scrolls inside its main section, which a full-page screenshot of
    the window does not reach, so the window is made as tall as that section (measured again once the charts and
    maps have redrawn at the new size) for the shot."""
    page.mouse.move(WIDTH - 2, 200)  # no hover: a table's toolbar or a tooltip would be in the shot
    height = content_height(page)
    for _ in range(4):
        page.set_viewport_size({"width": WIDTH, "height": max(HEIGHT, height)})
        page.wait_for_timeout(2000)
        settle(page)
        grown = content_height(page)
        if grown <= height:
            break
        height = grown
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    print(f"{path} ({WIDTH}×{max(HEIGHT, height)})", flush=True)


def open_page(page: Page, title: str) -> None:
    """Open a page by its link in the sidebar: the same browser session, so an admin sign-in is kept (a reload
    forgets it)."""
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    page.wait_for_timeout(500)
    settle(page)


def sign_in_as_admin(page: Page, key: str | None) -> None:
    """Type the key into the first "Sign in as admin" form in view, if the page shows one (a collapsed expander or
    another tab may hold one out of view)."""
    forms = page.locator("[data-testid='stForm']").filter(has=page.get_by_label("Admin API key", exact=True))
    shown = [form for form in forms.all() if form.is_visible()]
    if key is None or not shown:
        return
    shown[0].get_by_label("Admin API key", exact=True).fill(key)
    shown[0].get_by_role("button", name="Sign in as admin").click()
    page.wait_for_timeout(500)
    settle(page)
    if page.get_by_text("Admin actions as", exact=False).count() == 0:  # the sidebar says who admin actions act as
        raise Stop("the dashboard did not take the admin key: see the page's message")


def wait_for_text(page: Page, pattern: str, timeout_ms: int) -> None:
    page.wait_for_function(
        "(pattern) => new RegExp(pattern).test(document.body.innerText)", arg=pattern, timeout=timeout_ms, polling=500
    )


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


def wide_csv(api: APIRequestContext, steps: int = 24) -> bytes:
    """Two hours of the METR-LA wide layout for the last three registered sensors (not the Sensor page's first),
    20 hours ago (UTC, written without a zone), one cell out of range. The values are the readings already stored
    for those times (the sample day's), so the upload shows duplicates and one refusal and stores nothing new: the
    map and the demo feed's check of the database are left as they were."""
    answer = api.get("/api/traffic/sensors")
    if not answer.ok:
        raise Stop(f"GET /api/traffic/sensors answered {answer.status}: {answer.text()[:200]}")
    sensors = [s["sensor_id"] for s in answer.json()[-3:]]
    start = (datetime.now(UTC) - timedelta(hours=20)).replace(minute=0, second=0, microsecond=0)
    until = start + timedelta(minutes=5 * steps)
    stored: dict[str, dict[datetime, float]] = {}
    for sensor in sensors:
        page = api.get(f"/api/traffic/sensors/{sensor}/readings",
                       params={"since": start.isoformat(), "until": until.isoformat(), "size": 1000})  # fmt: skip
        items = page.json().get("items", []) if page.ok else []
        stored[sensor] = {datetime.fromisoformat(r["timestamp"]).astimezone(UTC): r["speed_mph"] for r in items}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["", *sensors])
    for step in range(steps):
        stamp = start + timedelta(minutes=5 * step)
        writer.writerow([f"{stamp:%Y-%m-%d %H:%M:%S}", *[stored[s].get(stamp, "") for s in sensors]])
    writer.writerow([f"{until:%Y-%m-%d %H:%M:%S}", 200])
    return out.getvalue().encode("utf-8")


def live_readings(api: APIRequestContext) -> str:
    """Readings for the Network and Sensor pages: the demo's last 24 hours (the congestion model's own network,
    timestamped up to now) when the network holds none or only the demo feed's; what was done, in a line."""
    forecast = api.get("/api/traffic/forecast")
    if not forecast.ok:
        return f"the network forecast answered {forecast.status}: Network and Sensor are shot as they are"
    health = api.get("/health").json()
    demo = "demo_feed" in health.get("components", {})
    if forecast.json().get("as_of") is not None and not demo:
        return "the network holds readings: Network and Sensor show them"
    answer = api.post("/api/traffic/readings/sample", params={"hours": 24}, timeout=120_000)
    if answer.status in (404, 405):
        if demo:
            return "the demo feed runs: Network and Sensor show its readings"
        return ("no readings and this API has no sample route (POST /api/traffic/readings/sample): Network and "
                "Sensor are shot without data; load readings (python -m backend.cli.replay) and run again")  # fmt: skip
    if not answer.ok:
        raise Stop(f"loading the sample readings answered {answer.status}: {answer.text()[:300]}")
    stored = answer.json()
    return (f"the demo's last 24 hours of readings are in ({stored['accepted']:,} added, {stored['duplicates']:,} "
            "already there): Network and Sensor show data")  # fmt: skip


def dataset_named(api: APIRequestContext, name: str) -> str | None:
    listed = api.get("/api/datasets", params={"size": 100})
    if not listed.ok:
        raise Stop(f"GET /api/datasets answered {listed.status}: {listed.text()[:200]}")
    return next((d["id"] for d in listed.json()["items"] if d["name"] == name), None)


def uploaded(api: APIRequestContext, name: str, filename: str, content: Callable[[], bytes], kind: str) -> str:
    """The id of the dataset called `name`: the one already there, else a new upload of `content()`."""
    found = dataset_named(api, name)
    if found is not None:
        return found
    answer = api.post(
        "/api/datasets",
        multipart={"file": {"name": filename, "mimeType": "text/csv", "buffer": content()}, "name": name,
                   "kind": kind},
        timeout=300_000,
    )  # fmt: skip
    if not answer.ok:
        raise Stop(f"uploading {filename} answered {answer.status}: {answer.text()[:300]}")
    return answer.json()["id"]


def first_rows(path: Path, rows: int) -> bytes:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return "".join(line for _, line in zip(range(rows + 1), handle, strict=False)).encode("utf-8")


# The real Daegu files (outside the project, never copied into it): side tables with coordinates and addresses, and
# the accident file (127,826 accidents; its first ACCIDENT_ROWS are uploaded).
SIDE_TABLES = {"daegu_cctv.csv": "Daegu speed cameras", "daegu_child_protection_zone.csv": "Daegu child zones"}
ACCIDENTS = ("accidents_2007_2015.csv.gz", "Daegu accidents 2007-2015 (first 40,000)")
ACCIDENT_ROWS = 40_000


def predict(page: Page, base: str, out: Path) -> None:
    page.goto(f"{base}/")
    settle(page)
    page.get_by_role("button", name="Predict").click()
    settle(page)
    capture(page, out / "01-predict.png")


def batch(page: Page, out: Path) -> None:
    open_page(page, "Batch")
    page.locator("input[type=file]").set_input_files({"name": "rows.csv", "mimeType": "text/csv",
                                                      "buffer": sample_csv()})  # fmt: skip
    settle(page)
    page.get_by_role("button", name="Score 100 rows").click()
    wait_for_text(page, "Batch (success|partial|failure)", 120_000)
    settle(page)
    capture(page, out / "02-batch.png")


def risk_map(page: Page, out: Path) -> None:
    open_page(page, "Risk map & charts")
    page.wait_for_timeout(3000)  # the map's frame draws after the script run
    capture(page, out / "03-risk-map.png")


def datasets(page: Page, api: APIRequestContext, key: str | None, out: Path) -> str:
    """The generated accident file: uploaded through the page the first time (its check shown), scored; the
    dataset's id."""
    open_page(page, "Datasets")
    existing = dataset_named(api, GENERATED)
    if existing is None:
        open_expander(page, "Upload a file")  # open when there is no dataset yet
        sign_in_as_admin(page, key)
        open_expander(page, "Upload a file")
        page.locator("input[type=file]").set_input_files(
            {"name": "daegu_accidents.csv", "mimeType": "text/csv", "buffer": dacon_csv()}
        )
        page.get_by_label("Name").fill(GENERATED)
        page.get_by_role("button", name="Upload and check").click()
        wait_for_text(page, "rows are valid", 120_000)
        settle(page)
        existing = dataset_named(api, GENERATED)
        assert existing is not None
    else:
        choose_dataset(page, existing)
    sign_in_as_admin(page, key)  # the scoring tab's form, when the upload did not ask
    job = api.get(f"/api/datasets/{existing}/predictions")
    if job.status == 404 or job.json().get("status") not in ("success", "partial"):
        page.get_by_role("button", name=re.compile(r"^Score [\d,]+ valid rows")).first.click()
        wait_for_text(page, "Scored [\\d,]+ rows", 300_000)
        settle(page)
    capture(page, out / "04-datasets.png")
    return existing


def open_expander(page: Page, title: str) -> None:
    expander = page.locator("[data-testid='stExpander'] details").filter(has_text=title).first
    if expander.get_attribute("open") is None:
        expander.locator("summary").click()
        page.wait_for_timeout(500)


def choose_dataset(page: Page, dataset_id: str) -> None:
    """Pick a dataset in the page's "Dataset" box by the id its option names."""
    box = page.get_by_label("Dataset", exact=True)
    if dataset_id[:8] in (box.input_value() if box.count() else ""):
        return
    page.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").first.click()
    page.get_by_role("option").filter(has_text=dataset_id[:8]).first.click()
    settle(page)


def explore(page: Page, base: str, api: APIRequestContext, daegu: Path, generated: str, out: Path) -> None:
    """The Explore page over the real side tables (map, charts, the cameras near the child zones) and the accident
    file (each 동's accidents beside the speed cameras); without those files, over the generated accidents."""
    if not all((daegu / name).exists() for name in [*SIDE_TABLES, ACCIDENTS[0]]):
        print(f"the Daegu files are not in {daegu}: the Explore page shows the generated accidents", flush=True)
        page.goto(f"{base}/explore?dataset={generated}")
        settle(page)
        page.wait_for_timeout(4000)
        capture(page, out / "05-explore.png")
        return
    sides = {uploaded(api, name, filename, (daegu / filename).read_bytes, "table"): name
             for filename, name in SIDE_TABLES.items()}  # fmt: skip
    cameras = next(i for i, name in sides.items() if name == "Daegu speed cameras")
    accidents = uploaded(api, ACCIDENTS[1], "accidents.csv", lambda: first_rows(daegu / ACCIDENTS[0], ACCIDENT_ROWS),
                         "eclo")  # fmt: skip

    page.goto(f"{base}/explore?dataset={cameras}")
    settle(page)
    page.wait_for_timeout(4000)  # the maps' frames draw after the script run
    capture(page, out / "05-explore-table.png")
    page.get_by_text("box", exact=True).click()  # the chosen column's box, from its quantile summary
    settle(page)
    page.get_by_text("Charts", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=out / "05-explore-box.png")  # the box chart in view, not the whole page
    print(out / "05-explore-box.png", flush=True)

    open_page(page, "Datasets")  # the same session: the Datasets page shows the table
    capture(page, out / "04-datasets-table.png")

    page.goto(f"{base}/explore?dataset={accidents}")
    settle(page)
    page.wait_for_timeout(4000)
    capture(page, out / "05-explore-accidents.png")


ASSISTANT_QUESTION = ("Which Daegu district is riskiest for an accident on a rainy weekday evening, and how is the "
                      "road network doing right now?")  # fmt: skip


def assistant(page: Page, out: Path, llm_key: str | None) -> None:
    """The Assistant page: with an LLM key, a question answered with the tools (the first step opened, its chart
    shown); without one, the page as it opens."""
    open_page(page, "Assistant")
    if llm_key:
        field = page.get_by_label("Anthropic API key", exact=True).and_(page.locator("input"))
        field.fill(llm_key)
        field.press("Enter")
        settle(page)
        chat = page.get_by_placeholder("Ask about traffic, accidents or a dataset")
        chat.fill(ASSISTANT_QUESTION)
        chat.press("Enter")
        # the saved answer's usage caption, or the refusal (a wrong key: the page shows the provider's message)
        wait_for_text(page, "tokens in|was not answered", 300_000)
        settle(page)
        steps = page.locator("[data-testid='stChatMessage'] [data-testid='stExpander'] summary")
        if steps.count():
            steps.first.click()
            settle(page)
    capture(page, out / "06-assistant.png")


def network(page: Page, out: Path) -> None:
    open_page(page, "Network")
    page.wait_for_timeout(4000)  # the map's frame draws after the script run
    capture(page, out / "07-network.png")
    page.get_by_text("+60 min", exact=True).click()
    settle(page)
    page.wait_for_timeout(4000)
    capture(page, out / "07-network-60.png")


def sensor(page: Page, out: Path) -> None:
    open_page(page, "Sensor")
    neighbours = page.get_by_text("Show its", exact=False)
    if neighbours.count():  # only a sensor with neighbours offers them
        neighbours.first.click()
        settle(page)
    capture(page, out / "08-sensor.png")


def readings(page: Page, api: APIRequestContext, key: str | None, out: Path) -> None:
    open_page(page, "Readings")
    sign_in_as_admin(page, key)
    page.locator("input[type=file]").first.set_input_files(
        {"name": "wide.csv", "mimeType": "text/csv", "buffer": wide_csv(api)}
    )
    settle(page)
    page.get_by_role("button", name=re.compile(r"^Send [\d,]+ readings")).click()
    wait_for_text(page, "accepted", 60_000)
    settle(page)
    capture(page, out / "09-readings.png")


def system(page: Page, out: Path) -> None:
    open_page(page, "System")
    capture(page, out / "10-system.png")


def shadow_rows(rows: int = 30) -> list[dict[str, object]]:
    """Single-prediction bodies from the batch's sample rows (no time band: the API derives it from the hour)."""
    found = csv.DictReader(io.StringIO(sample_csv(rows).decode("utf-8")))
    numbers = {"accident_hour", "accident_year", "accident_month", "accident_day"}
    return [{k: int(v) if k in numbers else v for k, v in row.items() if v} for row in found]


def choose_model(page: Page, name: str) -> None:
    """Pick a model in the Models page's "Model" box (the page keeps it for the session)."""
    box = page.get_by_label("Model", exact=True)
    if box.count() and box.input_value().startswith(f"{name} ("):
        return
    page.locator("[data-testid='stSelectbox']").filter(has_text="Model").first.click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(name)} \(")).first.click()
    settle(page)


def models(page: Page, api: APIRequestContext, key: str | None, out: Path) -> None:
    """The Models page. The first time, a version is trained through it (from the accident file the Datasets page
    uploaded) and set as the ECLO challenger (the served answers stay the champion's), then a few single
    predictions are scored in its shadow: the page shows the comparison, the alias history, the shadow scores and
    the drift of the recorded inputs (the predictions and the scored file)."""
    open_page(page, "Models")
    choose_model(page, "eclo")
    sign_in_as_admin(page, key)
    answer = api.get("/api/models/eclo/versions")
    if not answer.ok:
        raise Stop(f"GET /api/models/eclo/versions answered {answer.status}: {answer.text()[:200]}")
    listing = answer.json()
    if not [v for v in listing["versions"] if not v["is_default"]]:
        before = {j["job_id"] for j in api.get("/api/models/eclo/training").json()["jobs"]}
        page.get_by_role("button", name="Train a new version").click()
        deadline = time.monotonic() + 900
        while True:  # the page follows the job; its end is read from the API
            jobs = [j for j in api.get("/api/models/eclo/training").json()["jobs"] if j["job_id"] not in before]
            if jobs and jobs[0]["status"] in ("success", "failure", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise Stop("the training of an ECLO version took over 15 minutes: is the stack's worker running?")
            time.sleep(2)
        if jobs[0]["status"] != "success":
            raise Stop(f"the training of an ECLO version {jobs[0]['status']}: {jobs[0].get('error')}")
        wait_for_text(page, "The last training .* made version", 60_000)
        settle(page)
        listing = api.get("/api/models/eclo/versions").json()
    if listing["challenger"] is None:
        page.get_by_role("button", name="Set as challenger").click()  # the newest version is chosen
        settle(page)
        page.get_by_role("button", name="Confirm").click()
        wait_for_text(page, "The challenger of eclo moved", 60_000)
        settle(page)
        time.sleep(6)  # every process follows the aliases within MODEL_RELOAD_SECONDS (5 s by default)
    shadow = api.get("/api/models/eclo/shadow").json()
    if shadow["challenger"] and not shadow["count"]:
        for row in shadow_rows():
            api.post("/api/predict/eclo", data=row)
        time.sleep(2)  # scored off the answers' path
        open_page(page, "Models")
    capture(page, out / "12-models.png")


def keys(page: Page, key: str | None, out: Path) -> None:
    open_page(page, "API keys")
    sign_in_as_admin(page, key)
    capture(page, out / "11-keys.png")


def main() -> None:
    url, api_url, key_file = stack_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=url, help=f"the dashboard (default {url}: API_HOST, STREAMLIT_PORT)")
    parser.add_argument("--api", default=api_url, help=f"the API (default {api_url}: API_HOST, API_PORT)")
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY"),
        help=f"an admin key (default: $API_KEY, else the key `make run` keeps in {key_file})",
    )
    parser.add_argument("--daegu", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/daegu")
    args = parser.parse_args()
    base, api_base = args.url.rstrip("/"), args.api.rstrip("/")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        raise Stop("no Chromium: install Debian's (`apt-get install -y chromium fonts-noto-cjk`)")
    started = time.monotonic()
    with sync_playwright() as playwright:
        check_stack(playwright, base, api_base)
        key = admin_key(playwright, api_base, args.api_key, key_file)
        args.out.mkdir(parents=True, exist_ok=True)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        api = playwright.request.new_context(base_url=api_base, extra_http_headers=headers)
        print(f"dashboard {base}, API {api_base}, "
              f"key {'of $API_KEY' if args.api_key else key_file if key else 'none (the API asks for none)'}; "
              f"{live_readings(api)}", flush=True)  # fmt: skip
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        try:
            predict(page, base, args.out)
            batch(page, args.out)
            risk_map(page, args.out)
            generated = datasets(page, api, key, args.out)
            assistant(page, args.out, os.environ.get("ANTHROPIC_API_KEY"))
            network(page, args.out)
            sensor(page, args.out)
            readings(page, api, key, args.out)
            system(page, args.out)
            keys(page, key, args.out)
            models(page, api, key, args.out)
            explore(page, base, api, args.daegu, generated, args.out)
        except Exception:
            page.screenshot(path=args.out / "failed.png", full_page=True)
            print(f"failed on {page.url}; the page as it was: {args.out / 'failed.png'}", file=sys.stderr)
            raise
        finally:
            api.dispose()
            browser.close()
    print(f"every page shot in {time.monotonic() - started:.0f} s, in {args.out}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Stop as reason:
        sys.exit(f"make screenshots: {reason}")
