"""The stack `make run` started on this machine: where its Redis servers listen.

`make run` (scripts/run.py) writes ``.data/run.json`` with the data and queue Redis URLs it uses and
its process id, and removes the file when it stops. Tools run beside it (``python -m
app.tenancy.admin``) use that data Redis when ``REDIS_URL`` is not set, instead of whatever answers on
the default port.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

RUN_FILE = Path(".data") / "run.json"


def write_run_file(urls: dict[str, str], path: Path = RUN_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**urls, "pid": os.getpid()}))


def remove_run_file(path: Path = RUN_FILE) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def running_stack(path: Path = RUN_FILE) -> dict[str, str] | None:
    """The URLs of the running `make run`, None when there is none (no file, or its process is gone)."""
    try:
        recorded = json.loads(path.read_text())
        os.kill(int(recorded["pid"]), 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {name: str(value) for name, value in recorded.items() if name != "pid"}
