"""A multipart upload read as it streams in: the file part goes straight to its destination, counted against a
size limit as it arrives, so a body over the limit is refused (413) without being read whole or kept anywhere."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from backend.api.middleware import CONTROL
from backend.core.errors import InvalidRequest, TooLarge

MAX_TEXT_FIELD = 1000


@dataclass
class ReceivedFile:
    filename: str = ""
    charset: str | None = None  # the file part's declared charset, if any
    size: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class UploadAborted(Exception):
    """The client went away before the body ended."""


async def receive_file(
    request: Request, write: Callable[[bytes], None], max_bytes: int, name: str = "file"
) -> ReceivedFile:
    """Stream the multipart part `name` into `write`; other parts are small text fields. Raises TooLarge past
    `max_bytes` of file data (or a body announced larger), InvalidRequest for a body that is not such a form."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidRequest(
            f"send the file as multipart/form-data with a part named {name!r}", details=[{"field": name}]
        )
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > max_bytes + 64 * 1024:
        raise _too_large(max_bytes, name)
    received = ReceivedFile()
    digest = hashlib.sha256()
    part: dict[str, str] = {}
    header: list[bytes] = [b"", b""]
    value: list[bytes] = []
    found = False

    def on_part_begin() -> None:
        part.clear()
        value.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        # latin-1 keeps the bytes as they came: a UTF-8 file name is decoded once, from the parsed option
        part[header[0].decode("latin-1").lower()] = header[1].decode("latin-1")
        header[0], header[1] = b"", b""

    def on_headers_finished() -> None:
        nonlocal found
        _, options = parse_options_header(part.get("content-disposition", ""))
        part["name"] = options.get(b"name", b"").decode("utf-8", "replace")
        if part["name"] == name:
            found = True
            received.filename = _filename(options, part.get("content-disposition", ""))
            charset = parse_options_header(part.get("content-type", ""))[1].get(b"charset")
            received.charset = charset.decode("latin-1")[:40] if charset else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if part.get("name") == name:
            received.size += len(chunk)
            if received.size > max_bytes:
                raise _too_large(max_bytes, name)
            digest.update(chunk)
            write(chunk)
        else:
            value.append(chunk)
            if sum(map(len, value)) > MAX_TEXT_FIELD:
                raise InvalidRequest(
                    f"form field {part.get('name')!r} is longer than {MAX_TEXT_FIELD} bytes",
                    details=[{"field": part.get("name")}],
                )

    def on_part_end() -> None:
        if part.get("name") and part["name"] != name:
            text = b"".join(value).decode("utf-8", "replace")
            if FIELD_CONTROL.search(text):
                raise InvalidRequest(
                    f"form field {part['name'][:40]!r} holds a control character (such as NUL); none is accepted",
                    details=[{"field": part["name"][:40]}],
                )
            received.fields[part["name"]] = text

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
        max_header_count=16,
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except ClientDisconnect as exc:
        raise UploadAborted("the client went away before the upload ended") from exc
    except (TooLarge, InvalidRequest):
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise InvalidRequest(f"not a readable multipart form: {exc}", details=[{"field": name}]) from exc
    if not found:
        raise InvalidRequest(f"the form has no part named {name!r} holding the file", details=[{"field": name}])
    received.sha256 = digest.hexdigest()
    return received


# A form field's text may hold line breaks and tabs, no other control character.
FIELD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EXTENDED_FILENAME = re.compile(r"""filename\*\s*=\s*([A-Za-z0-9_-]*)'[^']*'([^;\s]+)""", re.IGNORECASE)


def _filename(options: dict[bytes, bytes], disposition: str) -> str:
    """The part's file name: RFC 5987's `filename*=UTF-8''...` when given (python-multipart keeps only the plain
    one), else `filename` as UTF-8 (what browsers and curl send); a control character in it is refused."""
    extended = EXTENDED_FILENAME.search(disposition)
    if extended:
        try:
            name = unquote(extended.group(2), encoding=extended.group(1) or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            name = unquote(extended.group(2), errors="replace")
    else:
        name = options.get(b"filename", b"").decode("utf-8", "replace")
    if CONTROL.search(name):
        raise InvalidRequest("the file name holds a control character (such as NUL); none is accepted",
                             details=[{"field": "filename"}])  # fmt: skip
    return name[:300]


def _too_large(max_bytes: int, name: str) -> TooLarge:
    return TooLarge(
        f"the file is larger than the limit of {max_bytes} bytes", details=[{"field": name, "max_bytes": max_bytes}]
    )
