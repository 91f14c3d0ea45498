"""kvctl lock NAME -- COMMAND...: run a command while holding a lock (like ``etcdctl lock``).

A lease is granted (--ttl), kept alive from a background thread (every third of its ttl), and the
lock is acquired with it, waiting in line (--wait, in rounds of at most 60 s, the server's bound).
The command runs with KVCTL_LOCK_NAME, KVCTL_LOCK_LEASE and KVCTL_LOCK_TOKEN (the fencing token)
in its environment; when it ends (or kvctl is interrupted) the lock is released and the lease
revoked. Should the lease be lost meanwhile (a keepalive answered 404), the command is terminated:
it no longer holds the lock. Exit code: the command's, else kvctl's own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from typing import Any

from kvctl.client import API, segment
from kvctl.context import Context
from kvctl.errors import ApiError, CliError

SERVER_MAX_WAIT = 60.0
EXIT_LOCK_LOST = 3


class KeepAlive(threading.Thread):
    """Renews a lease every ``interval`` seconds until stopped; ``lost`` is set when the lease ends."""

    def __init__(self, ctx: Context, lease: str, interval: float, on_lost: Any) -> None:
        super().__init__(daemon=True)
        self._ctx = ctx
        self._lease = lease
        self._interval = interval
        self._stop = threading.Event()
        self._on_lost = on_lost
        self.lost = False

    def run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._ctx.client.call("POST", f"{API}/leases/{self._lease}/keepalive")
            except ApiError as exc:
                if exc.status == 404:
                    self.lost = True
                    self._on_lost()
                    return
            except CliError:
                continue  # the server could not be reached: try again, the lease may still live

    def stop(self) -> None:
        self._stop.set()


def acquire(ctx: Context, name: str, lease: str, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        left = max(0.0, deadline - time.monotonic())
        try:
            body = ctx.client.call(
                "POST", f"{API}/locks/{segment(name)}", json={"lease": lease, "wait": min(left, SERVER_MAX_WAIT)}
            )
            return body if isinstance(body, dict) else {}
        except ApiError as exc:
            if exc.code != "lock_held" or time.monotonic() >= deadline:
                raise


def cmd_lock(ctx: Context) -> int:
    args = ctx.args
    command = list(args.cmd)  # what follows `--` (main.parse_args splits it off)
    if not command:
        raise CliError("give the command to run after --, e.g. kvctl lock deploy -- ./deploy.sh")
    lease_body = ctx.client.call("POST", f"{API}/leases", json={"ttl": args.ttl}) or {}
    lease = str(lease_body.get("id", ""))
    child: subprocess.Popen[bytes] | None = None

    def lost() -> None:
        print(f"kvctl: lease {lease} lost: lock {args.name!r} is no longer held; stopping the command", file=sys.stderr)
        if child is not None and child.poll() is None:
            child.terminate()

    keepalive = KeepAlive(ctx, lease, max(args.ttl / 3, 0.2), lost)
    keepalive.start()
    held = False
    try:
        lock = acquire(ctx, args.name, lease, args.wait)
        held = True
        token = lock.get("token")
        ctx.out.note(f"lock {args.name!r} acquired, fencing token {token}")
        env = {**os.environ, "KVCTL_LOCK_NAME": args.name, "KVCTL_LOCK_LEASE": lease, "KVCTL_LOCK_TOKEN": str(token)}
        try:
            child = subprocess.Popen(command, env=env)
        except OSError as exc:
            raise CliError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from exc
        code = child.wait()
        return EXIT_LOCK_LOST if keepalive.lost and code != 0 else code
    finally:
        keepalive.stop()
        if child is not None and child.poll() is None:
            child.terminate()
            child.wait()
        if held and not keepalive.lost:
            with contextlib.suppress(CliError):  # revoking the lease below releases it too
                ctx.client.call("DELETE", f"{API}/locks/{segment(args.name)}", params={"lease": lease})
        with contextlib.suppress(CliError):  # expired already: nothing left to release
            ctx.client.call("DELETE", f"{API}/leases/{lease}")
