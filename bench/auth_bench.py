"""`make bench` (auth under attack): 60 concurrent logins for unknown usernames from one client
address (in a process of its own), against the stack as production runs it (gunicorn with one
uvicorn worker per core, bcrypt cost 12, the default throttles), while a legitimate user logs in
from other addresses and wrk reads a key. Reports the legitimate logins' latency (6 logins, one a
second) and then the KV GET p50 (wrk, 16 connections) under attack against their idle values, and
the attacker's outcomes; writes bench/results/auth-*.json.

Addresses: every request goes through 127.0.0.1, which TRUSTED_PROXIES trusts by default, with an
X-Forwarded-For naming the client (as an ingress would). The attacker runs in a process of its own,
at a lower CPU priority, so its client work does not slow the measuring one.

    python -m bench.auth_bench [--duration 10] [--attackers 60] [--app-dir DIR]

``--app-dir`` runs the API from another checkout (e.g. an older commit, to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.platform.embedded_redis import RedisProcess, free_port
from bench.run import RESULTS, ROOT, WRK_MISSING, run_wrk, wait_for

PASSWORD = "Bench12345"
LOGIN_SAMPLES = 6
ATTACKER = "203.0.113.66"
ATTACKER_NICENESS = 10


def attack(base: str, attackers: int, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """``attackers`` concurrent loops of logins for unknown usernames, for ``seconds``.

    At a lower CPU priority: a real attacker's client runs on the attacker's machine, this one shares
    the server's cores (it still sends requests as fast as the server answers them)."""
    os.nice(ATTACKER_NICENESS)

    async def run() -> dict[str, int]:
        statuses: Counter[str] = Counter()
        deadline = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=attackers, max_keepalive_connections=attackers)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

            async def loop(n: int) -> None:
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    body = {"username": f"ghost{n}-{i}", "password": "Guess12345"}
                    try:
                        r = await http.post("/api/v1/auth/login", json=body, headers={"X-Forwarded-For": ATTACKER})
                        statuses[str(r.status_code)] += 1
                    except httpx.HTTPError as exc:
                        statuses[exc.__class__.__name__] += 1

            await asyncio.gather(*(loop(n) for n in range(attackers)))
        return dict(statuses)

    out.put(asyncio.run(run()))


def legit_logins(base: str, samples: int, spacing: float, first_address: int) -> list[float]:
    """Seconds each of ``samples`` logins of the user ``legit`` took, each from a new address."""
    took = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(samples):
            headers = {"X-Forwarded-For": f"192.0.2.{first_address + i}"}
            started = time.perf_counter()
            r = http.post("/api/v1/auth/login", json={"username": "legit", "password": PASSWORD}, headers=headers)
            took.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise RuntimeError(f"the legitimate login failed: {r.status_code} {r.text}")
            time.sleep(spacing)
    return took


def measure(base: str, token: str, work: Path, duration: int, first_address: int) -> dict[str, object]:
    """Legitimate logins (one a second), then wrk GET of one key for ``duration`` s."""
    script = work / "get.lua"
    script.write_text('request = function() return wrk.format("GET", "/api/v1/kv/bench-key") end\n')
    took = legit_logins(base, LOGIN_SAMPLES, 1.0, first_address)
    return {
        "login_s": {"max": round(max(took), 3), "median": round(statistics.median(took), 3), "all": took},
        "get": run_wrk(base, token, script, duration, 16),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--attackers", type=int, default=60)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout whose API runs")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print(WRK_MISSING, file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="kvstore-auth-bench-"))
    data = RedisProcess(work / "data").start()
    queue = RedisProcess(work / "queue").start()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(args.app_dir.resolve()),
        "ENVIRONMENT": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "REDIS_URL": data.url,
        "HUEY_REDIS_URL": queue.url,
        "WEB_CONCURRENCY": str(args.workers),
        "PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "prom"),
        "WORKER_METRICS_PORT": "0",
        "RATE_LIMIT_PER_SECOND": "1000000",  # the tenant's limit never refuses wrk
        "RATE_LIMIT_BURST": "1000000",
    }
    bin_dir = Path(sys.executable).parent
    api_log = (work / "api.log").open("wb")
    procs = [
        subprocess.Popen([str(bin_dir / "huey_consumer"), "app.worker.huey"], env=env, cwd=args.app_dir,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "app.main:app"], env=env,
                         cwd=args.app_dir, stdout=api_log, stderr=subprocess.STDOUT),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    report: dict[str, object] = {}
    try:
        wait_for(f"{base}/api/v1/health/live")
        for name, address in (("bench", "192.0.2.250"), ("legit", "192.0.2.251")):
            reg = httpx.post(
                f"{base}/api/v1/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": address},
                timeout=30,
            )
            reg.raise_for_status()
            if name == "bench":
                token = reg.json()["access_token"]
        put = httpx.put(
            f"{base}/api/v1/kv/bench-key", json={"value": {"n": 1}}, headers={"Authorization": f"Bearer {token}"}
        )
        put.raise_for_status()
        print("idle ...", flush=True)
        idle = measure(base, token, work, args.duration, first_address=1)
        print(f"under attack: {args.attackers} concurrent logins for unknown users from {ATTACKER} ...", flush=True)
        outcomes: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        flood_s = args.duration + LOGIN_SAMPLES * 2 + 3
        attacker = multiprocessing.Process(target=attack, args=(base, args.attackers, flood_s, outcomes))
        attacker.start()
        time.sleep(1.5)  # the flood is on
        attacked = measure(base, token, work, args.duration, first_address=100)
        attacker_statuses = outcomes.get(timeout=120)
        attacker.join(30)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT if proc is procs[0] else signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        data.stop()
        queue.stop()
        api_log.close()
        problems = [
            line
            for line in (work / "api.log").read_text(errors="replace").splitlines()
            if "ERROR" in line or "Error" in line
        ]
        if problems:
            print(f"\nthe API logged {len(problems)} errors, the first ones:", *problems[:5], sep="\n  ")
        shutil.rmtree(work, ignore_errors=True)
    idle_p50 = idle["get"]["p50_ms"]  # type: ignore[index]
    attacked_p50 = attacked["get"]["p50_ms"]  # type: ignore[index]
    login_max = attacked["login_s"]["max"]  # type: ignore[index]
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "app_dir": str(args.app_dir),
        "workers": args.workers,
        "attackers": args.attackers,
        "duration_s": args.duration,
        "idle": idle,
        "attacked": attacked,
        "attacker_statuses": attacker_statuses,
        "targets": {
            "legitimate login under attack <= ~1 s": {"value": login_max, "ok": login_max <= 1.2},
            "GET p50 under attack <= 2x idle": {
                "value": round(attacked_p50 / idle_p50, 2),
                "ok": attacked_p50 <= 2 * idle_p50,
            },
        },
    }
    print(f"\n  {'':<14} {'GET req/s':>10} {'GET p50 ms':>11} {'login median s':>15} {'login max s':>12}")
    for name, phase in (("idle", idle), ("under attack", attacked)):
        get, login = phase["get"], phase["login_s"]  # type: ignore[index]
        print(f"  {name:<14} {get['rps']:>10.0f} {get['p50_ms']:>11.2f} {login['median']:>15.3f} {login['max']:>12.3f}")
    print(f"  attacker's answers: {attacker_statuses}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"auth-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    for name, verdict in report["targets"].items():  # type: ignore[attr-defined]
        print(f"  {'PASS' if verdict['ok'] else 'FAIL'}  {name}: {verdict['value']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
