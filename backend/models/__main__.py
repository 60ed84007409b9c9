"""`python -m backend.models`: the model lifecycle from a terminal, through the API's /api/models routes.

    python -m backend.models list NAME
    python -m backend.models train NAME --dataset ID [--dataset ID ...] --holdout-from-year YEAR [--no-wait]
    python -m backend.models train NAME --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z [--no-wait]
    python -m backend.models promote NAME VERSION [--challenger]
    python -m backend.models rollback NAME
    python -m backend.models drift NAME [--since ISO] [--until ISO]

An ECLO model trains from uploaded accident files with outcomes (their ids: GET /api/datasets), the years from
--holdout-from-year on held out to compare it with the champion; a congestion model from the readings stored
between --since and --until (times with their zone). `train` follows the job until it is over (exit 0 on success,
1 on a failure or a cancel) unless --no-wait. A VERSION may be shortened to a prefix naming one version.

The API: API_URL (default http://API_HOST:API_PORT, the service's settings); the key: TRAFFIC_API_KEY (none needed
when the API runs with AUTH_ENABLED=false). `list` and `drift` need the read scope; `train`, `promote` and `rollback`
admin (`make run` prints a key holding every scope). Exit codes: 0 done, 1 refused by the API or a failed training,
2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

import requests

KEY_VARIABLE = "TRAFFIC_API_KEY"
URL_VARIABLE = "API_URL"
FINAL = ("success", "failure", "cancelled")
POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 30.0
POLL_FAILURES = 10  # polls in a row that find no API (restarting) before following gives up
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
BAR = 20
MISSING = "-"


class Refused(Exception):
    """The API answered an error (`status`), or could not be reached (`status` None)."""

    def __init__(self, message: str, status: int | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or []


class Usage(Exception):
    """A usage error found after parsing (exit code 2)."""


class Api:
    def __init__(self, base_url: str, key: str | None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise Refused(f"cannot reach the API at {self.base_url} ({type(exc).__name__}): is it running (make "
                          f"run)? {URL_VARIABLE} names its address") from exc  # fmt: skip
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise Refused(error["message"], response.status_code, error.get("details"))
            except (ValueError, KeyError, TypeError):
                raise Refused(f"the API answered HTTP {response.status_code}", response.status_code) from None
        return response.json() if response.content else None


def model_path(name: str, *parts: str) -> str:
    return "/".join([f"/api/models/{quote(name, safe='')}", *(quote(p, safe="") for p in parts)])


def explain(error: Refused, key: str | None) -> str:
    """The API's message, what it named (fields, the models it has) and, for a refused key, what to do."""
    lines = [f"error{f' (HTTP {error.status})' if error.status else ''}: {error.message}"]
    for detail in error.details:
        if not isinstance(detail, dict):
            continue
        if detail.get("available") is not None and "available" not in error.message:
            lines.append(f"  available: {', '.join(map(str, detail['available'])) or 'none'}")
        elif detail.get("field") and detail.get("message"):
            lines.append(f"  {detail['field']}: {detail['message']}")
    if error.status == 401:
        lines.append(f"  the key in {KEY_VARIABLE} is unknown or revoked" if key else
                     f"  set {KEY_VARIABLE} to an API key of this service (`make run` prints one)")  # fmt: skip
    elif error.status == 403:
        lines.append(f"  use a key holding that scope ({KEY_VARIABLE}; `make run` prints one holding every scope)")
    return "\n".join(lines)


# What the commands print.


def minute(stamp: str | None) -> str:
    """'2026-12-02T08:30:38+00:00' -> '2026-12-02 08:30 UTC' (the API's times are in UTC)."""
    if not stamp:
        return MISSING
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return f"{moment.astimezone(UTC) if moment.tzinfo else moment:%Y-%m-%d %H:%M} UTC"


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> str:
    """Columns padded to their widest cell; the columns in `right` aligned right (numbers)."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in pairs]
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _dig(mapping: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def key_metric(kind: str, version: dict[str, Any]) -> tuple[str, str, str]:
    """(the column's title, the version's own figure, new vs champion on the same rows) for a kind."""
    metrics, comparison = version.get("metrics") or {}, version.get("comparison") or {}
    if kind == "eclo":
        years = _dig(metrics, "temporal", "test_years")
        own = number(_dig(metrics, "temporal", "eclo", "rmsle"))
        if own != MISSING and years:
            own += f" ({years[0]}-{years[1]})"
        new, champion = _dig(comparison, "new", "rmsle"), _dig(comparison, "champion", "rmsle")
        title = "held-out RMSLE"
    elif kind == "congestion":
        own = number(metrics.get("mae_15"), 3)
        new, champion = _dig(comparison, "new", "mae", "15"), _dig(comparison, "champion", "mae", "15")
        title = "MAE +15 min (mph)"
    else:
        return "metric", MISSING, MISSING
    versus = MISSING
    if new is not None and champion is not None:
        versus = f"{number(new)} vs {number(champion)} ({_dig(comparison, 'champion', 'version') or '?'})"
    elif new is not None:
        versus = f"{number(new)} (no champion compared)"
    return title, own, versus


def comparison_lines(kind: str, comparison: dict[str, Any]) -> list[str]:
    """The new version beside the champion (and the baselines) on the same held-out rows."""
    if kind == "eclo":
        first, last = comparison.get("held_out_years") or ("?", "?")
        left = _dig(comparison, "left_out", "rows")
        head = f"held-out {first}-{last}: {number(comparison.get('rows'))} rows compared ({number(left)} left out)"
        keys = ("rmsle", "constant_rmsle", "last_year_rmsle", "severe_auc", "severe_brier", "rows")
        header = ["", "version", "RMSLE", "constant", "last year", "severe AUC", "Brier", "rows"]
        rows = [[role, comparison[role].get("version", MISSING), *(number(comparison[role].get(k)) for k in keys)]
                for role in ("new", "champion") if isinstance(comparison.get(role), dict)]  # fmt: skip
        return [head, table(header, rows, right=(2, 3, 4, 5, 6, 7))]
    head = f"{number(comparison.get('windows'))} test windows compared"
    header = ["", "version", "MAE +15 min", "+30 min", "+60 min"]
    rows = []
    for role, label in (("new", "new"), ("champion", "champion"), ("copy_last", "copy-last"),
                        ("historical_average", "historical average")):  # fmt: skip
        figures = comparison.get(role)
        if isinstance(figures, dict):
            mae = figures.get("mae") or {}
            rows.append([label, figures.get("version", ""), *(number(mae.get(m), 3) for m in ("15", "30", "60"))])
    return [head, table(header, rows, right=(2, 3, 4))]


def list_versions(api: Api, name: str) -> int:
    listing = api.call("GET", model_path(name, "versions"))
    versions = listing["versions"]
    kind = next((v["kind"] for v in versions if v.get("kind")), "")
    print(f"{listing['name']} ({kind or 'unknown kind'}): champion {listing['champion']}, challenger "
          f"{listing['challenger'] or 'none'}; {len(versions)} version{'s' if len(versions) != 1 else ''} (the "
          f"last {listing['keep_versions']} trained are kept)")  # fmt: skip
    rows = []
    title = "metric"
    for version in versions:
        aliases = [*version["aliases"], *(["default"] if version["is_default"] else [])]
        title, own, versus = key_metric(kind, version)
        rows.append([version["version"], ", ".join(aliases) or MISSING, minute(version.get("trained_at")),
                     number((version.get("training_data") or {}).get("rows")), own, versus])  # fmt: skip
    print(table(["version", "aliases", "trained at", "rows", title, "vs champion, same rows"], rows, right=(3,)))
    return 0


def progress_line(job: dict[str, Any], width: int) -> str:
    fraction = float(job.get("fraction") or 0.0)
    filled = round(fraction * BAR)
    text = f"[{'#' * filled}{'.' * (BAR - filled)}] {fraction:4.0%} {job['status']}"
    if job.get("stage"):
        text += f": {job['stage']}"
    if job.get("log") and job["status"] not in FINAL:
        text += f" | {job['log'][-1]}"
    return text if len(text) <= width else text[: width - 1] + "…"


def follow(api: Api, path: str, out: TextIO, show_log: bool = False) -> dict[str, Any]:
    """Poll the training job until it is final: a progress line redrawn in place on a terminal (elsewhere printed
    when the stage changes or another tenth is done); with `show_log`, every log line as it comes."""
    tty = out.isatty()
    width = max(40, shutil.get_terminal_size((100, 20)).columns - 1)
    shown_lines, last_printed, misses = 0, None, 0
    while True:
        try:
            job = api.call("GET", path)
            misses = 0
        except Refused as exc:
            if (exc.status is not None and exc.status < 500) or misses + 1 >= POLL_FAILURES:
                raise
            misses += 1
            time.sleep(POLL_SECONDS)
            continue
        lines = job.get("log") or []
        new, shown_lines = lines[min(shown_lines, len(lines)) :], len(lines)
        final = job["status"] in FINAL
        line = progress_line(job, width)
        if tty:
            out.write("\r\033[K")
            for text in new if show_log else ():
                out.write(f"  {text}\n")
            out.write(line + ("\n" if final else ""))
        else:
            for text in new if show_log else ():
                out.write(f"  {text}\n")
            state = (job["status"], job.get("stage"), int(float(job.get("fraction") or 0) * 10))
            if state != last_printed or final:
                out.write(progress_line({**job, "log": []}, width) + "\n")
                last_printed = state
        out.flush()
        if final:
            return job
        time.sleep(POLL_SECONDS)


def training_body(args: argparse.Namespace) -> dict[str, Any]:
    eclo = bool(args.dataset) or args.holdout_from_year is not None
    congestion = args.since is not None or args.until is not None
    if eclo and congestion:
        raise Usage("--dataset and --holdout-from-year train an ECLO version, --since and --until a congestion one: "
                    "not both")  # fmt: skip
    if eclo:
        if not args.dataset or args.holdout_from_year is None:
            raise Usage("an ECLO version needs --dataset (one or more) and --holdout-from-year")
        body: dict[str, Any] = {"dataset_ids": args.dataset, "holdout_from_year": args.holdout_from_year}
    elif congestion:
        if args.since is None or args.until is None:
            raise Usage("a congestion version needs both --since and --until")
        body = {"since": args.since.isoformat(), "until": args.until.isoformat()}
    else:
        raise Usage("say what to train on: --dataset ID --holdout-from-year YEAR (ECLO), or --since and --until "
                    "(congestion)")  # fmt: skip
    if args.seed is not None:
        body["seed"] = args.seed
    return body


def train(api: Api, args: argparse.Namespace) -> int:
    body = training_body(args)
    accepted = api.call("POST", model_path(args.name, "versions"), json=body)
    print(f"training job {accepted['job_id']} of {args.name}: {accepted['status']}", flush=True)
    if args.no_wait:
        print(f"follow it: GET {api.base_url}{accepted['poll_url']}")
        return 0
    try:
        job = follow(api, accepted["poll_url"], sys.stdout, show_log=args.log)
    except KeyboardInterrupt:
        print(f"\nno longer following; job {accepted['job_id']} goes on (GET {api.base_url}{accepted['poll_url']}; "
              f"cancel: POST {api.base_url}{accepted['poll_url']}/cancel)", file=sys.stderr)  # fmt: skip
        return 130
    if job["status"] != "success":
        print(f"training {job['status']}: {job.get('error') or 'no reason given'}", file=sys.stderr)
        for text in (job.get("log") or [])[-5:] if not args.log else ():
            print(f"  {text}", file=sys.stderr)
        return 1
    version = job["version"]
    print(f"version {version} is ready")
    try:
        listing = api.call("GET", model_path(args.name, "versions"))
    except Refused:  # a key without the read scope: the version is there all the same
        listing = {"versions": []}
    found = next((v for v in listing["versions"] if v["version"] == version), None)
    if found is not None and found.get("comparison"):
        print("\n".join(comparison_lines(found["kind"], found["comparison"])))
    print(f"promote it: python -m backend.models promote {args.name} {version}")
    return 0


def resolve_version(api: Api, name: str, given: str) -> str:
    """The version a prefix names; as given when it names none (the API says so) or the key cannot list."""
    try:
        listing = api.call("GET", model_path(name, "versions"))
    except Refused as exc:
        if exc.status in (401, 403):  # an admin key without the read scope: the API checks the version itself
            return given
        raise
    found = [v["version"] for v in listing["versions"] if v["version"].startswith(given.lower())]
    if len(found) > 1:
        raise Usage(f"{given!r} starts {len(found)} versions of {name} ({', '.join(found)}): give more of it")
    return found[0] if found else given


def moved(answer: dict[str, Any]) -> str:
    served = "serves it" if answer["alias"] == "champion" else "scores it in the shadow of the champion"
    return (f"{answer['alias']} of {answer['name']}: {answer['previous'] or 'none'} -> {answer['version'] or 'none'} "
            f"(every process {served} within {answer['reload_seconds']:g} s)")  # fmt: skip


def promote(api: Api, args: argparse.Namespace) -> int:
    alias = "challenger" if args.challenger else "champion"
    version = resolve_version(api, args.name, args.version)
    print(moved(api.call("PUT", model_path(args.name, "aliases", alias), json={"version": version})))
    return 0


def rollback(api: Api, args: argparse.Namespace) -> int:
    print(moved(api.call("POST", model_path(args.name, "rollback"))))
    return 0


def drift(api: Api, args: argparse.Namespace) -> int:
    params = {k: v.isoformat() for k, v in (("since", args.since), ("until", args.until)) if v is not None}
    report = api.call("GET", model_path(args.name, "drift"), params=params)
    fields = report["fields"]
    drifted = sum(1 for f in fields if f.get("drifted"))
    print(f"{report['name']} version {report['version']}, {minute(report['since'])} to {minute(report['until'])}: "
          f"{number(report['rows'])} recorded rows; PSI threshold {report['threshold']:g}; {drifted} of "
          f"{len(fields)} input fields drifted")  # fmt: skip
    if report.get("note"):
        print(f"note: {report['note']}")
    header = ["field", "kind", "n", "PSI", "p-value", "drifted", "note"]
    for title, items in (("inputs", fields), ("answers", report["predictions"])):
        if not items:
            continue
        rows = [[f["field"], f.get("kind") or MISSING, number(f.get("n")), number(f.get("psi")),
                 MISSING if f.get("p_value") is None else f"{f['p_value']:.3g}",
                 "DRIFTED" if f.get("drifted") else "no", f.get("note") or ""] for f in items]  # fmt: skip
        print(f"\n{title}")
        print(table(header, rows, right=(2, 3, 4)))
    return 0


def zoned(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no ISO time (e.g. 2026-11-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its zone: Z, +09:00, -08:00, …")
    return moment


def default_api_url() -> str:
    if os.environ.get(URL_VARIABLE):
        return os.environ[URL_VARIABLE]
    from backend.core.config import get_settings

    settings = get_settings()
    host = "127.0.0.1" if settings.api_host in WILDCARD_HOSTS else settings.api_host
    return f"http://{host}:{settings.api_port}"


class Parser(argparse.ArgumentParser):
    def subcommand(self, name: str) -> argparse.ArgumentParser:
        """The parser of a command, whose usage a usage error found after parsing shows."""
        return self.commands.choices[name]

    commands: Any


def parser() -> Parser:
    top = Parser(prog="python -m backend.models", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    top.add_argument("--api", metavar="URL", help=f"the API (default ${URL_VARIABLE}, else API_HOST:API_PORT)")
    commands = top.commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="a model's versions: aliases, training, key metric")
    listing.add_argument("name")
    training = commands.add_parser("train", help="train a new version on the workers and follow the job")
    training.add_argument("name")
    training.add_argument("--dataset", action="append", metavar="ID", help="an uploaded accident file (ECLO)")
    training.add_argument("--holdout-from-year", type=int, metavar="YEAR", help="the first held-out year (ECLO)")
    training.add_argument("--since", type=zoned, help="the readings from (congestion; ISO with zone)")
    training.add_argument("--until", type=zoned, help="the readings until (congestion; ISO with zone)")
    training.add_argument("--seed", type=int)
    training.add_argument("--no-wait", action="store_true", help="print the job and return at once")
    training.add_argument("--log", action="store_true", help="print the job's log lines as they come")
    promoting = commands.add_parser("promote", help="point the champion (or --challenger) at a version")
    promoting.add_argument("name")
    promoting.add_argument("version", help="the version, or a prefix naming one")
    promoting.add_argument("--challenger", action="store_true", help="the challenger, scored in the shadow")
    rolling = commands.add_parser("rollback", help="move the champion back to where it was before its last move")
    rolling.add_argument("name")
    drifting = commands.add_parser("drift", help="recorded inputs and answers against the champion's training")
    drifting.add_argument("name")
    drifting.add_argument("--since", type=zoned, help="default: 7 days before --until")
    drifting.add_argument("--until", type=zoned, help="default: now")
    return top


COMMANDS = {"list": lambda api, args: list_versions(api, args.name), "train": train, "promote": promote,
            "rollback": rollback, "drift": drift}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    key = os.environ.get(KEY_VARIABLE) or None
    api = Api(args.api or default_api_url(), key)
    try:
        return COMMANDS[args.command](api, args)
    except Usage as exc:
        arguments.subcommand(args.command).error(str(exc))  # exits with 2
    except Refused as exc:
        print(explain(exc, key), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
