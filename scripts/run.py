"""`make run`: the API, the gRPC server, one Huey consumer and (unless REDIS_URL/HUEY_REDIS_URL are set) two
local redis-server processes with their data under ./.data/; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.config import get_settings, without_password
from app.platform.embedded_redis import RedisProcess, RedisServerNotFound
from app.platform.local_stack import remove_run_file, write_run_file

DATA_DIR = Path(".data")
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `kill` stops everything, like Ctrl-C


def main() -> int:
    env = dict(os.environ)
    started_redis: list[RedisProcess] = []
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Started in the background by a script, SIGINT arrives ignored and Ctrl-C would stop nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # REDIS_APPENDFSYNC=always: no acknowledged write is lost even when the machine crashes.
    settings = get_settings()
    appendfsync = settings.redis_appendfsync
    maxmemory = {"redis-data": settings.redis_maxmemory, "redis-queue": settings.huey_redis_maxmemory}
    try:
        # A Redis that is configured (REDIS_URL, or REDIS_HOST/PORT/DB/PASSWORD, in the environment or .env)
        # is used as is; only the missing ones get a local server.
        configured = {
            "REDIS_URL": settings.redis_url if settings.data_redis_given else None,
            "HUEY_REDIS_URL": settings.huey_redis_url if settings.queue_redis_given else None,
        }
        for variable, name, label in (("REDIS_URL", "redis-data", "data"), ("HUEY_REDIS_URL", "redis-queue", "queue")):
            url = configured[variable]
            if url:
                env[variable] = url
                print(f"{label} Redis  {without_password(url)} (configured)", flush=True)
                continue
            try:
                server = RedisProcess(DATA_DIR / name, appendfsync=appendfsync, maxmemory=maxmemory[name]).start()
            except RedisServerNotFound as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                return 1
            started_redis.append(server)
            env[variable] = server.url
            print(f"{label} Redis  {server.url} (AOF under {server.data_dir}, maxmemory {maxmemory[name]})", flush=True)
        env.setdefault("ENVIRONMENT", "development")
        # The worker's metrics listen where the API does (127.0.0.1 unless HOST says otherwise).
        env.setdefault("WORKER_METRICS_HOST", HOST)
        # Tools beside it (python -m app.tenancy.admin) find these servers, not whatever listens on 6379.
        write_run_file({"REDIS_URL": env["REDIS_URL"], "HUEY_REDIS_URL": env["HUEY_REDIS_URL"]})
        # huey_consumer app.worker.huey with -w/-k from HUEY_WORKERS/HUEY_WORKER_TYPE; it runs the periodic tasks.
        # Own sessions: a Ctrl-C in the terminal reaches this script only, which then stops the API and the
        # worker once each (a second SIGINT would cut them short, with tracebacks), and Redis last.
        children.append(
            subprocess.Popen([sys.executable, "-m", "app.worker.consumer"], env=env, start_new_session=True)
        )
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", PORT, "--no-access-log"],
                env=env,
                start_new_session=True,
            )
        )
        # The gRPC server (README "gRPC"): its own process, on GRPC_PORT (default 50051), beside the API.
        env.setdefault("GRPC_HOST", HOST)
        env.setdefault("GRPC_METRICS_HOST", HOST)
        children.append(subprocess.Popen([sys.executable, "-m", "app.grpc"], env=env, start_new_session=True))
        grpc_port = env.get("GRPC_PORT", str(settings.grpc_port))
        print(
            f"\nkvstore API on http://{HOST}:{PORT} - docs at http://{HOST}:{PORT}/docs, "
            f"console at http://{HOST}:{PORT}/console, gRPC on {HOST}:{grpc_port} (Ctrl-C stops everything)\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        remove_run_file()
        for server in started_redis:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
