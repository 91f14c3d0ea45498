"""The Huey instance (on the queue Redis, separate from the data Redis) and its task modules."""

from __future__ import annotations

from huey import RedisHuey

from app.config import get_settings

settings = get_settings()

huey = RedisHuey("kvstore", url=settings.huey_redis_url)
