"""`python -m app.tenancy.admin` (console script `kvstore-admin`): operator commands that talk to the data
Redis directly through the service code (REDIS_URL etc. from the environment / .env).

    kvstore-admin usage TENANT
    kvstore-admin set-limits TENANT [--max-keys N] [--max-kv-bytes N] [--max-object-bytes N]
                                    [--max-buckets N] [--max-watch-streams N] [--reset QUOTA ...]
    kvstore-admin recount TENANT

TENANT is a tenant id or a username. Quotas: 0 = unlimited; --reset goes back to the default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from redis.exceptions import RedisError

from app.config import Settings, get_settings, unknown_settings
from app.platform.errors import KVStoreError
from app.platform.local_stack import running_stack
from app.platform.redis import create_async_data_redis
from app.platform.scripts import Scripts
from app.tenancy.service import QUOTAS, UsageService


def admin_settings() -> Settings:
    """The settings; without REDIS_URL in the environment, the data Redis of a running `make run`.
    Says on stderr which data Redis it uses."""
    settings = get_settings()
    stack = None if os.environ.get("REDIS_URL") else running_stack()
    if stack is not None and stack.get("REDIS_URL"):
        settings = settings.model_copy(update={"redis_url": stack["REDIS_URL"]})
        print(f"data Redis: {settings.redis_url} (the running make run)", file=sys.stderr)
    else:
        source = "REDIS_URL" if os.environ.get("REDIS_URL") else "the default; no make run is running"
        print(f"data Redis: {settings.redis_url} ({source})", file=sys.stderr)
    return settings


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = admin_settings()
    redis = create_async_data_redis(settings)
    service = UsageService(redis, Scripts(redis), settings)
    try:
        tenant_id = await service.find_tenant(args.tenant)
        if args.command == "set-limits":
            changes: dict[str, int | None] = {q: getattr(args, q) for q in QUOTAS if getattr(args, q) is not None}
            changes.update(dict.fromkeys(args.reset or [], None))
            if not changes:
                raise KVStoreError("nothing to change: give at least one --max-... or --reset")
            return {"tenant_id": tenant_id, "limits": await service.set_limits(tenant_id, changes)}
        if args.command == "recount":
            return {"tenant_id": tenant_id, "usage": await service.recount(tenant_id)}
        return {"tenant_id": tenant_id, **(await service.usage(tenant_id)).as_dict()}
    finally:
        await redis.aclose()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kvstore-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("usage", help="show a tenant's usage and limits").add_argument("tenant")
    commands.add_parser("recount", help="recompute a tenant's usage from its data").add_argument("tenant")
    limits = commands.add_parser("set-limits", help="override a tenant's quotas")
    limits.add_argument("tenant")
    for quota in QUOTAS:
        limits.add_argument(f"--{quota.replace('_', '-')}", dest=quota, type=int, metavar="N")
    limits.add_argument("--reset", nargs="+", choices=QUOTAS, metavar="QUOTA", help="back to the default")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in unknown_settings():
        print(f"warning: {name} is not a kvstore setting and is ignored", file=sys.stderr)
    try:
        result = asyncio.run(run(args))
    except KVStoreError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"error: the data Redis is unreachable ({exc.__class__.__name__})", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
