"""The one error envelope: `{"error": {"code", "message", "details"}}` for every non-2xx answer."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.errors import ServiceError
from backend.core.storage import STORE_UNREACHABLE
from backend.ml.errors import InvalidRow, ModelNotFound, VersionNotFound
from backend.schemas.health import HealthResponse

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",  # the code of every 413 (backend.core.errors.TooLarge too)
    415: "unsupported",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def health_response(report: HealthResponse) -> JSONResponse:
    """200 with the report; 503 in the envelope, naming what is down, with the report beside it."""
    body = report.model_dump()
    if report.status == "ok":
        return JSONResponse(body)
    down = sorted(name for name, c in report.components.items() if c.status != "ok")
    details = [{"dependency": name, "detail": report.components[name].detail} for name in down]
    error = {"code": "dependency_unavailable", "message": f"unavailable: {', '.join(down)}", "details": details}
    return JSONResponse({"error": error, **body}, status_code=503)


FASTAPI_BODY_ERROR = "There was an error parsing the body"


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status_code >= 500 and exc.__cause__ is not None:  # the cause may name hosts: logged, not answered
        log.warning("%s: %s: %s", exc.message, type(exc.__cause__).__name__, exc.__cause__)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _invalid_row(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRow)
    return error_response(422, "validation_error", exc.summary(), [e.to_dict() for e in exc.errors])


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    if len(details) == 1 and details[0]["field"] == "body":  # the body as a whole, e.g. a bare list of batch rows
        return error_response(422, "validation_error", f"invalid request body: {details[0]['message']}", details)
    fields = ", ".join(d["field"] for d in details)
    count = f"{len(details)} {'field' if len(details) == 1 else 'fields'}"
    return error_response(422, "validation_error", f"invalid request in {count}: {fields}", details)


async def _model_not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelNotFound)
    return error_response(404, "not_found", str(exc), [{"available": exc.available}])


async def _version_not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VersionNotFound)
    return error_response(404, "not_found", str(exc), [{"field": "version"}])


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:  # a declared body that is no JSON text
        message = "the body is not valid JSON (UTF-8 text)"
        return error_response(422, "validation_error", message, [{"field": "body"}])
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _store_unreachable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("file storage unreachable: %s: %s", type(exc).__name__, exc)  # names the endpoint: logged only
    return error_response(503, "dependency_unavailable", "storage is unavailable: the file store did not answer",
                          [{"dependency": "storage"}])  # fmt: skip


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(InvalidRow, _invalid_row)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ModelNotFound, _model_not_found)
    app.add_exception_handler(VersionNotFound, _version_not_found)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for unreachable in STORE_UNREACHABLE:
        app.add_exception_handler(unreachable, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)
