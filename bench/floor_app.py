"""The floor of `make bench`: a bare FastAPI app answering a constant, served exactly like the API
(gunicorn, one uvicorn worker per core). What no FastAPI service on this machine can beat."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def constant() -> dict[str, str]:
    return {"status": "ok"}
