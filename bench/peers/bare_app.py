"""The baseline: a bare FastAPI app with one constant route, served by the same uvicorn as the API."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}
