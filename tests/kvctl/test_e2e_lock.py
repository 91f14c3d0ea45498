"""kvctl lock end to end: two `python -m kvctl lock` processes against the API served by uvicorn take
turns, each command sees its fencing token, and the lock is free afterwards."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.support.api_process import ApiProcess
from tests.support.kvctl_process import Run, registered

pytestmark = pytest.mark.subprocess

CRITICAL = """
import os, sys, time
path = sys.argv[1]
with open(path, "a") as log:
    log.write(f"start {os.environ['KVCTL_LOCK_TOKEN']}\\n"); log.flush()
    time.sleep(0.5)
    log.write("end\\n")
"""


def test_two_kvctl_lock_processes_take_turns(api: ApiProcess, tmp_path: Path) -> None:
    cli = registered(api.url, tmp_path / "kvctl" / "config.json", f"cli{uuid.uuid4().hex[:12]}")
    log = tmp_path / "critical.log"
    runs: list[Run] = []

    def run() -> None:
        runs.append(cli("lock", "deploy", "--ttl", "2", "--wait", "30", "--", sys.executable, "-c", CRITICAL, str(log)))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [r.code for r in runs] == [0, 0], [r.err for r in runs]
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "end", "start", "end"]  # never interleaved
    assert [int(lines[0].split()[1]), int(lines[2].split()[1])] == [1, 2]
