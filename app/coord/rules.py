"""Limits and name rules of leases and locks."""

from __future__ import annotations

import re

LEASE_ID_RE = re.compile(r"^[0-9a-f]{16}$")
LOCK_NAME_RE = re.compile(r"^[A-Za-z0-9._:@=+~,-]{1,256}$")
MIN_LEASE_TTL = 1
MAX_LEASE_TTL = 86_400
"""A lease lives 1 second to 1 day between keepalives."""
MAX_LEASES = 10_000
"""Live leases a tenant may hold at once."""
MAX_LOCK_WAIT = 60
"""The longest a lock acquisition may wait (seconds)."""
TICKET_LIFE_MS = 2_000
"""A waiter renews its place in a lock's queue while it waits: one that vanished (its API process
died) loses its place after this long, so it cannot hold up the queue."""
POLL_SECONDS = 0.02
"""How often a waiter looks at the lock (at most; it backs off to POLL_MAX_SECONDS)."""
POLL_MAX_SECONDS = 0.1
