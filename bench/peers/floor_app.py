"""The floor for bench/peers/run.py: uvicorn and a bare ASGI callable answering `predict_one` (with its
explanation) and nothing else: no FastAPI, no key, record, metric, cache or error envelope. No server doing this
work answers faster on this machine."""

from __future__ import annotations

from pathlib import Path

import orjson
from starlette.types import Receive, Scope, Send

from backend.ml.eclo.model import EcloModel

MODEL = EcloModel.load(Path(__file__).resolve().parents[2] / "model" / "eclo")
HEADERS = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = (
        b'{"status":"ok"}'
        if scope["path"] == "/ping"
        else orjson.dumps(MODEL.predict_one(orjson.loads(body)).to_dict())
    )
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": answer})
