"""The body limit on a real uvicorn (both of its HTTP/1.1 implementations): a 20 MB body over REQUEST_MAX_BYTES
(8 MB) gets the 413 envelope whatever the client, one that writes the whole body before it reads (urllib, requests,
curl without `Expect`) as well as one that reads early (a raw socket), announced or chunked, with or without an API
key (the limit comes first). The drain after the 413 is bounded: a body far over it is not read, a slow one is cut."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from backend.api.middleware import DRAIN_SECONDS
from backend.dev.processes import wait_until
from tests.fixtures.auth import cli
from tests.fixtures.stack import stack_of_its_own

pytestmark = pytest.mark.stack

PATH = "/api/predict/eclo"
BODY_BYTES = 20 * 1024 * 1024
OPENING, CLOSING = b'{"weather": "', b'"}'
BODY = OPENING + b"x" * (BODY_BYTES - len(OPENING) - len(CLOSING)) + CLOSING


@dataclass(frozen=True)
class Api:
    url: str  # of PATH
    key: str  # with the scopes of the routes posted to: predict, admin (readings)
    log: Path  # uvicorn's output

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return str(parts.hostname), int(parts.port or 80)


@pytest.fixture(scope="module")
def api(redis_url: str, small_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API's server with AUTH_ENABLED=true (default settings otherwise: REQUEST_MAX_BYTES is 8 MB)."""
    folder = tmp_path_factory.mktemp("body-limit")
    with stack_of_its_own(folder, redis_url, small_model_root, AUTH_ENABLED="true") as stack:
        made = cli(stack.env, "create", "body-limit", "--scopes", "predict,admin")
        assert made.returncode == 0, made.stderr
        url = stack.start_api()
        yield Api(url + PATH, made.stdout.strip(), stack.log_file(f"api-{urlsplit(url).port}"))


@pytest.fixture(params=["anonymous", "key"])
def headers(request: pytest.FixtureRequest, api: Api) -> dict[str, str]:
    given = {"Content-Type": "application/json"}
    return given | {"Authorization": f"Bearer {api.key}"} if request.param == "key" else given


def chunks(size: int = 256 * 1024) -> Iterator[bytes]:
    """BODY in pieces: sent chunked, without Content-Length."""
    for start in range(0, len(BODY), size):
        yield BODY[start : start + size]


def assert_envelope(status: int, content: bytes, keyless_chunked: bool = False) -> None:
    """The 413 envelope. A key-less body without Content-Length is refused by its missing key before any of it is
    read; then drained (read and dropped) so that the client gets an answer: a 401, or the 413 once the drain passes
    the limit."""
    if keyless_chunked and status == 401:
        assert json.loads(content)["error"]["code"] == "unauthorized", content[:200]
        return
    assert status == 413, content[:200]
    error = json.loads(content)["error"]
    assert error["code"] == "too_large" and error["details"] == [{"field": "body"}] and error["message"]


def keyless(headers: dict[str, str], announced: bool) -> bool:
    return "Authorization" not in headers and not announced


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "chunked"])
def test_urllib_which_writes_the_whole_body_first_reads_the_413(
    api: Api, headers: dict[str, str], announced: bool
) -> None:
    """urllib sends `Connection: close` and reads nothing before the whole body is written."""
    data: bytes | Iterator[bytes] = BODY if announced else chunks()
    request = urllib.request.Request(api.url, data=data, headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    with raised.value as answer:
        assert answer.headers["x-request-id"] and answer.headers["connection"] == "close"
        assert_envelope(answer.code, answer.read(), keyless(headers, announced))


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "chunked"])
@pytest.mark.parametrize("path", ["/api/predict/eclo/batch", "/api/traffic/readings"])
def test_routes_answered_by_fastapi_refuse_alike(api: Api, path: str, announced: bool) -> None:
    """The hot route's body is read by HotRoutes, these by FastAPI: the chunked body's 413 comes while it reads
    (after the route's auth: a key without its scope would be answered 403 before the body is read)."""
    url = api.url.removesuffix(PATH) + path
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api.key}"}
    request = urllib.request.Request(url, data=BODY if announced else chunks(), headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    with raised.value as answer:
        assert_envelope(answer.code, answer.read())
        request_id = answer.headers["x-request-id"]
    # the app reading a refused body is told the client left: no error is logged for it
    assert wait_until(lambda: request_id in api.log.read_text(), timeout=5)
    time.sleep(0.2)
    errors = [line for line in api.log.read_text().splitlines() if '"level":"ERROR"' in line]
    assert not errors, errors[0][:500]


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "chunked"])
@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_requests_reads_the_413(api: Api, headers: dict[str, str], announced: bool, connection: str) -> None:
    sent = headers | {"Connection": connection}
    response = requests.post(api.url, data=BODY if announced else chunks(), headers=sent, timeout=30)
    assert_envelope(response.status_code, response.content, keyless(headers, announced))


@pytest.mark.parametrize("expect", ["100-continue", ""], ids=["expect-100", "no-expect"])
def test_curl_reads_the_413(api: Api, headers: dict[str, str], expect: str, tmp_path: Path) -> None:
    """curl asks `Expect: 100-continue` for a large body by default (the 413 comes before the body is sent);
    without it, curl writes the body before it reads."""
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    options = [arg for name, value in (headers | {"Expect": expect}).items() for arg in ("-H", f"{name}: {value}")]
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}", "--data-binary", f"@{body}",
         *options, api.url],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    content, _, status = done.stdout.rpartition(b"\n")
    assert_envelope(int(status), content)


def send_head(sock: socket.socket, api: Api, headers: dict[str, str], length: int | None) -> None:
    """A POST's request line and headers: `Content-Length: length`, or chunked when None."""
    fields = headers | {"Host": urlsplit(api.url).netloc, "Connection": "close"}
    fields |= {"Content-Length": str(length)} if length is not None else {"Transfer-Encoding": "chunked"}
    head = f"POST {urlsplit(api.url).path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall(head.encode("latin-1") + b"\r\n")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of a response with Content-Length, read without waiting for the connection's end."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the connection ended before the response's headers: {received!r}"
        received += chunk
    top, _, content = received.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(content) < int(fields["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the connection ended before the response's body"
        content += chunk
    return int(lines[0].split()[1]), content


def closed_within(sock: socket.socket, seconds: float) -> float:
    """How long until the server ends the connection (an end or a reset), failing after `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "chunked"])
def test_a_client_that_reads_early_gets_the_413(api: Api, headers: dict[str, str], announced: bool) -> None:
    """Headers and 9 MB of the body (past the limit), then the answer read before the rest is sent."""
    part = BODY[: 9 * 1024 * 1024]
    with socket.create_connection(api.address, timeout=30) as sock:
        send_head(sock, api, headers, len(BODY) if announced else None)
        sock.sendall(part if announced else b"%x\r\n%b\r\n" % (len(part), part))
        assert_envelope(*read_response(sock), keyless(headers, announced))


def test_a_body_far_over_the_drain_bound_is_not_read(api: Api) -> None:
    """1 GB announced: the 413, then the connection closed at once (the client may see a reset), nothing drained."""
    with socket.create_connection(api.address, timeout=30) as sock:
        send_head(sock, api, {}, 1 << 30)
        try:
            sock.sendall(BODY[: 1024 * 1024])
            assert_envelope(*read_response(sock))
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server closed with the body unread, as documented
        else:
            assert closed_within(sock, 2) < 2


def test_a_slow_body_is_drained_for_a_bounded_time(api: Api) -> None:
    """20 MB announced, 1 MB sent and nothing more: the 413 at once, the connection closed after the drain's
    deadline."""
    with socket.create_connection(api.address, timeout=30) as sock:
        send_head(sock, api, {}, len(BODY))
        sock.sendall(BODY[: 1024 * 1024])
        started = time.monotonic()
        assert_envelope(*read_response(sock))
        assert time.monotonic() - started < 2
        closed_within(sock, DRAIN_SECONDS + 5)
        assert DRAIN_SECONDS - 1 < time.monotonic() - started < DRAIN_SECONDS + 3
