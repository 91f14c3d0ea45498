"""`make bench`: the stack as production runs it, side by side with the floor, driven by wrk.

Starts a data Redis and a queue Redis (AOF everysec), one Huey consumer and gunicorn with one
uvicorn worker per core; beside it, served the same way, the floor: a bare FastAPI app answering a
constant (bench/floor_app.py). Registers a tenant, loads its keys, then runs wrk (one thread, fixed
concurrency) in interleaved rounds against: the floor, GET of a key, PUT of a key, a list page of
100, a batch get of 100 keys and a 90/10 read/write mix. Each figure is the median of the rounds, as
req/s, p50/p99 and a ratio to the floor of the same run, with the data Redis's CPU per request and
per script call (INFO cpu and commandstats). Results are written as JSON to bench/results/.

    python -m bench.run [--sizes 100000] [--rounds 3] [--duration 8] [--connections 32] [--cluster]

--cluster: the data Redis is a local Redis Cluster of three masters (AOF everysec), the API on its
cluster client; Redis CPU is summed over the nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis
from redis.crc import key_slot

from app.config import Settings
from app.kv.store import KV_PUT, write_header
from app.platform.embedded_redis import LocalRedisCluster, RedisProcess, free_port
from app.platform.keyspace import KeySchema

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOAD_PIPELINE = 2000

WRK_SCRIPTS = {
    "get": """
local n = {n}
request = function()
  return wrk.format("GET", string.format("/api/v1/kv/k%08d", math.random(0, n - 1)))
end
""",
    "put": """
local n = {n}
local body = '{{"value": {{"name": "bench", "count": 42, "tags": ["a", "b"]}}}}'
wrk.headers["Content-Type"] = "application/json"  -- a headers argument to wrk.format would drop -H ones
request = function()
  return wrk.format("PUT", string.format("/api/v1/kv/k%08d", math.random(0, n - 1)), nil, body)
end
""",
    "list100": """
local n = {n}
request = function()
  return wrk.format("GET", string.format("/api/v1/kv?limit=100&cursor=k%08d", math.random(0, n - 1)))
end
""",
    "batch100": """
local n = {n}
wrk.headers["Content-Type"] = "application/json"
request = function()
  local first = math.random(0, n - 100)
  local keys = {{}}
  for i = 0, 99 do keys[#keys + 1] = string.format('"k%08d"', first + i) end
  return wrk.format("POST", "/api/v1/kv/batch/get", nil, '{{"keys": [' .. table.concat(keys, ",") .. ']}}')
end
""",
    "mixed90_10": """
local n = {n}
local body = '{{"value": {{"name": "bench", "count": 42}}}}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  local path = string.format("/api/v1/kv/k%08d", math.random(0, n - 1))
  if math.random() < 0.9 then return wrk.format("GET", path) end
  return wrk.format("PUT", path, nil, body)
end
""",
}
# The same GET and PUT with a scoped API key (kv:read, kv:write) instead of a login's access token.
WRK_SCRIPTS["get_apikey"] = WRK_SCRIPTS["get"]
WRK_SCRIPTS["put_apikey"] = WRK_SCRIPTS["put"]

WRK_MISSING = """wrk is not installed. On Debian/Ubuntu:  sudo apt-get install wrk
(other systems: https://github.com/wg/wrk, build with `make`)"""


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50 and p99 latency (ms), and the error count from `wrk --latency` output."""

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    # wrk counts the connections it cuts at the end of the run as read errors: reported apart.
    sock = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", output)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(int(g) for g in sock.groups()) if sock else 0,
    }


def run_wrk(url: str, token: str | None, script: Path | None, duration: int, connections: int) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    if script:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def load_keys(data_url: str, tenant_id: str, total: int, already: int) -> None:
    """Write keys k00000000... straight through the kv_put script, pipelined."""
    bucket = KeySchema(tenant_id).bucket("default")
    client = redis.Redis.from_url(data_url)
    kv_put = client.register_script(KV_PUT.source)  # pipelined loading: the raw redis-py script
    settings = Settings(environment="test", secret_key="x" * 32, quota_max_keys=0, quota_max_kv_bytes=0)
    header = write_header(settings, tenant_id, "default")
    value = json.dumps({"name": "bench", "count": 42, "tags": ["a", "b"]})
    for start in range(already, total, LOAD_PIPELINE):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + LOAD_PIPELINE, total)):
            kv_put(keys=[bucket], args=[*header, f"k{i:08d}", value, "", "", "", "put", "", ""], client=pipe)
        pipe.execute()
    client.close()


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class RedisMeter:
    """The data Redis's CPU over one wrk run (summed over a cluster's nodes): per request, and per
    script call (EVALSHA)."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [redis.Redis(port=port) for port in ports]

    def _cpu(self) -> float:
        infos = [client.info("cpu") for client in self.clients]
        return sum(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]) for info in infos)

    def start(self) -> None:
        for client in self.clients:
            client.config_resetstat()
        self.cpu = self._cpu()

    def stop(self, requests: float) -> dict[str, float]:
        used = self._cpu() - self.cpu
        calls = usec = 0.0
        for client in self.clients:
            script = client.info("commandstats").get("cmdstat_evalsha", {})
            calls += float(script.get("calls", 0))
            usec += float(script.get("usec", 0))
        return {
            "redis_cpu_us_per_request": round(used * 1e6 / requests, 1) if requests else 0.0,
            "redis_us_per_script_call": round(usec / calls, 2) if calls else 0.0,
        }

    def close(self) -> None:
        for client in self.clients:
            client.close()


class ProcessMeter:
    """The CPU (user + system) of a gunicorn master's workers over one wrk run, per request: a figure
    that a busy machine disturbs far less than req/s (other processes take turns, not this work)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, master: subprocess.Popen[bytes], itself: bool = False, key: str = "api") -> None:
        self.master, self.itself, self.key = master, itself, key

    def _cpu(self) -> float:
        children = subprocess.run(["pgrep", "-P", str(self.master.pid)], capture_output=True, text=True).stdout.split()
        if self.itself:
            children.append(str(self.master.pid))
        total = 0
        for pid in children:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (after the command name)
        return total / self.TICK

    def start(self) -> None:
        self.cpu = self._cpu()

    def stop(self, requests: float) -> dict[str, float]:
        used = self._cpu() - self.cpu
        return {f"{self.key}_cpu_us_per_request": round(used * 1e6 / requests, 1) if requests else 0.0}


def start_gunicorn(
    app: str, env: dict[str, str], port: int, work: Path, name: str, root: Path
) -> subprocess.Popen[bytes]:
    bin_dir = Path(sys.executable).parent
    env = {**env, "PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(work / f"prom-{name}")}
    log = (work / f"{name}.log").open("wb")
    command = [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", app]
    return subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)


def profile(master: subprocess.Popen[bytes], work: Path, name: str) -> subprocess.Popen[bytes]:
    """py-spy on the first API worker for the scenario's run (200 Hz, raw collapsed stacks)."""
    children = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    out = work / f"profile-{name}.txt"
    command = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(out),
        "--nonblocking",
        "--pid",
        children[0],
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report_profile(spy: subprocess.Popen[bytes], path: Path, worker_requests: float) -> None:
    """Stop py-spy and print where one request's worker CPU goes (inclusive, by function)."""
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    seconds = total / 200
    print(f"  profile: {total} samples ({seconds:.1f} s of one worker's CPU); top frames, inclusive:")
    per_request_us = 1e6 * seconds / max(worker_requests, 1)
    for frame, samples in sorted(inclusive.items(), key=lambda item: -item[1])[:40]:
        print(f"    {100 * samples / total:5.1f}%  {frame[:150]}")
    print(f"  ~{per_request_us:.0f} us of worker CPU per request")
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, RESULTS / path.name)


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(statistics.median(run[name] for run in runs), 3) for name in runs[0]}


class Stack:
    """One API under test, as production runs it: its own data and queue Redis, a Huey consumer and
    gunicorn, from the checkout ``root`` (this one, or a baseline to compare with)."""

    def __init__(self, name: str, root: Path, work: Path, workers: int, cluster: bool = False) -> None:
        self.name, self.root = name, root
        self.data: RedisProcess | LocalRedisCluster
        if cluster:
            self.data = LocalRedisCluster(work / f"data-{name}", appendonly=True).start()
            ports = [node.port for node in self.data.nodes]
        else:
            self.data = RedisProcess(work / f"data-{name}").start()
            ports = [self.data.port]
        self.queue = RedisProcess(work / f"queue-{name}").start()
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(root),
            "ENVIRONMENT": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),  # production refuses a key that looks like a placeholder
            "REDIS_URL": self.data.url,
            "HUEY_REDIS_URL": self.queue.url,
            "WEB_CONCURRENCY": str(workers),
            "BIND_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "WORKER_METRICS_PORT": "0",
            # The limiter and quota checks still run on every request, but never refuse the benchmark.
            "RATE_LIMIT_PER_SECOND": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "QUOTA_MAX_KEYS": "0",
            "QUOTA_MAX_KV_BYTES": "0",
        }
        bin_dir = Path(sys.executable).parent
        self.procs = [
            subprocess.Popen([str(bin_dir / "huey_consumer"), "app.worker.huey"], env=self.env, cwd=root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            start_gunicorn("app.main:app", self.env, self.port, work, name, root),
        ]  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        self.meter = RedisMeter(ports)
        self.log = work / f"{name}.log"
        self.token = self.tenant_id = self.api_key = ""
        self.loaded = 0

    def ready(self) -> None:
        wait_for(f"{self.url}/api/v1/health/live")
        reg = httpx.post(
            f"{self.url}/api/v1/auth/register",
            json={"username": "bench", "email": "bench@example.com", "password": "Bench12345"},
            timeout=30,
        ).json()
        self.token, self.tenant_id = reg["access_token"], reg["tenant_id"]
        key = httpx.post(  # for the *_apikey scenarios ("" on a checkout without API keys: they are skipped)
            f"{self.url}/api/v1/auth/api-keys",
            json={"name": "bench", "scopes": ["kv:read", "kv:write"]},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        self.api_key = key.json()["key"] if key.status_code == 201 else ""

    def load(self, size: int) -> None:
        """Keys k00000000... written by the checkout's own kv_put script (its storage format)."""
        code = "import sys; from bench.run import load_keys; load_keys(*sys.argv[1:3], *map(int, sys.argv[3:]))"
        url = self.data.url
        if isinstance(self.data, LocalRedisCluster):  # the node of the tenant's slot (one hash tag)
            slot = key_slot(KeySchema(self.tenant_id).bucket("default").encode())
            per_node = LocalRedisCluster.SLOTS // len(self.data.nodes)
            url = self.data.nodes[min(slot // per_node, len(self.data.nodes) - 1)].url
        command = [sys.executable, "-c", code, url, self.tenant_id, str(size), str(self.loaded)]
        subprocess.run(command, cwd=self.root, env=self.env, check=True)
        self.loaded = size

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT if proc is self.procs[0] else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.meter.close()
        self.data.stop()
        self.queue.stop()
        problems = [line for line in self.log.read_text(errors="replace").splitlines() if '"ERROR"' in line]
        if problems:
            print(f"\n{self.name} logged {len(problems)} errors, the first ones:", *problems[:3], sep="\n  ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="tenant sizes (keys), ascending, e.g. 1000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each figure is their median")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    parser.add_argument(
        "--baseline", default="", help="another checkout (e.g. a git worktree of main) measured in the same run"
    )
    parser.add_argument("--cluster", action="store_true", help="the data Redis as a local 3-master Redis Cluster")
    parser.add_argument(
        "--profile", default="", help="scenario to profile with py-spy (one API worker, first round), e.g. get"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print(WRK_MISSING, file=sys.stderr)
        return 1
    sizes = sorted(int(s) for s in args.sizes.split(","))
    scenarios = {name: WRK_SCRIPTS[name] for name in (args.only.split(",") if args.only else WRK_SCRIPTS)}
    work = Path(tempfile.mkdtemp(prefix="kvstore-bench-"))
    stacks = [Stack("api", ROOT, work, args.workers, args.cluster)]
    if args.baseline:
        stacks.append(Stack("baseline", Path(args.baseline).resolve(), work, args.workers, args.cluster))
    floor_port = free_port()
    floor_proc = start_gunicorn("bench.floor_app:app", stacks[0].env, floor_port, work, "floor", ROOT)
    floor = f"http://127.0.0.1:{floor_port}"
    floor_meter = ProcessMeter(floor_proc)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        wait_for(f"{floor}/")
        for stack in stacks:
            stack.ready()
        for size in sizes:
            print(f"loading {size:,} keys ...", flush=True)
            started = time.monotonic()
            for stack in stacks:
                stack.load(size)
            print(f"  loaded in {time.monotonic() - started:.1f} s", flush=True)
            runs: dict[str, list[dict[str, float]]] = {"floor": []}
            for round_number in range(1, args.rounds + 1):
                print(f"  round {round_number}/{args.rounds}", flush=True)
                floor_meter.start()
                floor_run = run_wrk(f"{floor}/", None, None, args.duration, args.connections)
                floor_run.update(floor_meter.stop(floor_run["rps"] * args.duration))
                runs["floor"].append(floor_run)
                for name, template in scenarios.items():
                    script = work / f"{name}.lua"
                    script.write_text(template.format(n=size))
                    # Alternate which stack goes first, so a drift of the machine favours neither.
                    order = stacks if round_number % 2 else stacks[::-1]
                    for stack in order:
                        label = name if stack is stacks[0] else f"{name}@baseline"
                        token = stack.api_key if name.endswith("_apikey") else stack.token
                        if not token:
                            continue
                        stack.meter.start()
                        api_meter = ProcessMeter(stack.procs[1])
                        api_meter.start()
                        worker_meter = ProcessMeter(stack.procs[0], itself=True, key="worker")
                        worker_meter.start()
                        profiling = name == args.profile and round_number == 1 and stack is stacks[0]
                        spy = profile(stack.procs[1], work, name) if profiling else None
                        figures = run_wrk(stack.url, token, script, args.duration, args.connections)
                        if spy is not None:
                            report_profile(
                                spy, work / f"profile-{name}.txt", figures["rps"] * args.duration / args.workers
                            )
                        figures.update(stack.meter.stop(figures["rps"] * args.duration))
                        figures.update(api_meter.stop(figures["rps"] * args.duration))
                        figures.update(worker_meter.stop(figures["rps"] * args.duration))
                        runs.setdefault(label, []).append(figures)
            row = {name: median_of(figures) for name, figures in runs.items()}
            for name, figures in row.items():
                figures["ratio_to_floor"] = round(figures["rps"] / row["floor"]["rps"], 3)
                # The spread: each round's req/s against the floor of the same round.
                by_round = [run["rps"] / floor["rps"] for run, floor in zip(runs[name], runs["floor"], strict=True)]
                figures["ratio_min"], figures["ratio_max"] = round(min(by_round), 3), round(max(by_round), 3)
            results[str(size)] = row
            print_table(size, row)
    finally:
        floor_proc.send_signal(signal.SIGTERM)
        for stack in stacks:
            stack.stop()
        try:
            floor_proc.wait(20)
        except subprocess.TimeoutExpired:
            floor_proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "baseline": args.baseline or None,
        "cluster": args.cluster,
        "results": results,
        "targets": check_targets(results),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    for name, verdict in report["targets"].items():
        print(f"  {'PASS' if verdict['ok'] else 'FAIL'}  {name}: {verdict['value']}")
    return 0


def print_table(size: int, row: dict[str, dict[str, float]]) -> None:
    print(f"\n{size:,} keys in the tenant (median of the rounds; floor: a bare FastAPI app, same serving)")
    print(
        f"  {'scenario':<20} {'req/s':>9} {'x floor':>8} {'rounds':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'API CPU us/req':>15} {'worker us/req':>14} {'Redis CPU us/req':>17} {'us/script':>10}"
    )
    for name, f in row.items():
        print(
            f"  {name:<20} {f['rps']:>9.0f} {f['ratio_to_floor']:>8.2f}"
            f" {f['ratio_min']:>5.2f}-{f['ratio_max']:<4.2f} {f['p50_ms']:>8.2f} "
            f"{f['p99_ms']:>8.2f} {int(f['errors']):>7} {f.get('api_cpu_us_per_request', 0):>15.1f}"
            f" {f.get('worker_cpu_us_per_request', 0):>14.1f}"
            f" {f.get('redis_cpu_us_per_request', 0):>17.1f}"
            f" {f.get('redis_us_per_script_call', 0):>10.1f}"
        )


def check_targets(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, object]]:
    """The issue's targets, judged on the 100k-key run (or the middle size) and across sizes."""
    sizes = sorted(results, key=int)
    main = results.get("100000") or results[sizes[len(sizes) // 2]]
    verdicts: dict[str, dict[str, object]] = {}
    if "get" in main:
        ratio, p99 = main["get"]["ratio_to_floor"], main["get"]["p99_ms"]
        verdicts["GET >= 40% of the floor"] = {"value": ratio, "ok": ratio >= 0.40}
        verdicts["GET p99 <= 15 ms"] = {"value": p99, "ok": p99 <= 15}
    if "put" in main:
        ratio = main["put"]["ratio_to_floor"]
        verdicts["PUT >= 28% of the floor"] = {"value": ratio, "ok": ratio >= 0.28}
    if len(sizes) > 1:
        for scenario in ("get", "put", "list100"):
            if scenario not in main:
                continue
            figures = [results[s][scenario]["rps"] for s in sizes]
            spread = (max(figures) - min(figures)) / max(figures)
            verdicts[f"{scenario} within 15% across sizes"] = {"value": round(spread, 3), "ok": spread <= 0.15}
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
