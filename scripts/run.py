"""`make run`: the API, one Huey consumer and (unless REDIS_URL/HUEY_REDIS_URL are set) two
local redis-server processes with their data under ./.data/; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.core.embedded_redis import RedisProcess, RedisServerNotFound

DATA_DIR = Path(".data")
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def main() -> int:
    env = dict(os.environ)
    started_redis: list[RedisProcess] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        if not (env.get("REDIS_URL") and env.get("HUEY_REDIS_URL")):
            try:
                data = RedisProcess(DATA_DIR / "redis-data").start()
                queue = RedisProcess(DATA_DIR / "redis-queue").start()
            except RedisServerNotFound as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            started_redis += [data, queue]
            env["REDIS_URL"], env["HUEY_REDIS_URL"] = data.url, queue.url
            print(f"data Redis  {data.url} (AOF under {data.data_dir})")
            print(f"queue Redis {queue.url} (AOF under {queue.data_dir})")
        else:
            print(f"using REDIS_URL={env['REDIS_URL']} HUEY_REDIS_URL={env['HUEY_REDIS_URL']}")
        env.setdefault("ENVIRONMENT", "development")
        bin_dir = Path(sys.executable).parent
        children.append(subprocess.Popen([str(bin_dir / "huey_consumer"), "tasks.huey"], env=env))
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", PORT, "--no-access-log"],
                env=env,
            )
        )
        print(f"\nkvstore API on http://{HOST}:{PORT} - docs at http://{HOST}:{PORT}/docs (Ctrl-C stops everything)\n")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        for server in started_redis:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
