"""Every shipped Redis has a maxmemory below its container's memory limit (room for the AOF rewrite's
fork), with noeviction. (That the alert rules use only served series: tests/deploy/test_monitoring.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3}
K8S_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
HEADROOM = 0.35  # at least this share of the limit stays free for the fork of an AOF rewrite


def redis_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", value).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit.lower()]


def k8s_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", value).groups()  # type: ignore[union-attr]
    return int(number) * K8S_UNITS[unit]


def option(args: list[str], name: str) -> str:
    return str(args[args.index(name) + 1])


def check(args: list[str], limit: int) -> None:
    maxmemory = redis_bytes(option(args, "--maxmemory"))
    assert option(args, "--maxmemory-policy") == "noeviction"
    assert 0 < maxmemory <= limit * (1 - HEADROOM), (maxmemory, limit)


@pytest.mark.parametrize("service", ["redis", "redis-huey"])
def test_compose_redis_is_capped_below_its_memory_limit(service: str) -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    spec = compose["services"][service]
    check(spec["command"], redis_bytes(spec["mem_limit"]))


@pytest.mark.parametrize("manifest", ["redis-data.yaml", "redis-queue.yaml"])
def test_kubernetes_redis_is_capped_below_its_memory_limit(manifest: str) -> None:
    [statefulset] = [
        doc for doc in yaml.safe_load_all((ROOT / "kubernetes" / manifest).read_text()) if doc["kind"] == "StatefulSet"
    ]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    check(container["args"], k8s_bytes(container["resources"]["limits"]["memory"]))
