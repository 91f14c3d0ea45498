"""/leases and /locks: etcd-like leases (TTLs that keys and locks hang on) and locks with fencing tokens."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from app.audit.service import AuditService
from app.auth.deps import BearerClaims
from app.coord.model import Lease, LeaseKey
from app.coord.schemas import (
    LeaseGrant,
    LeaseInfo,
    LeaseKeyOut,
    LeaseOut,
    LeaseRevoked,
    LockAcquire,
    LockInfo,
    LockOut,
    LockReleased,
)
from app.coord.service import CoordService
from app.platform.context import audit_note
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.jsonutil import datetime_of_ms
from app.platform.security import AccessClaims

router = APIRouter(tags=["coordination"])

WriteClaims = Annotated[AccessClaims, Depends(BearerClaims("kv:write"))]
ReadClaims = Annotated[AccessClaims, Depends(BearerClaims("kv:read"))]
LeaseId = Annotated[str, Path(max_length=64, description="The lease id (16 hex digits)")]
LockName = Annotated[str, Path(max_length=256, description="The lock's name")]


async def get_coord(request: Request) -> CoordService:
    return request.app.state.coord_service  # type: ignore[no-any-return]


Coord = Annotated[CoordService, Depends(get_coord)]


def _lease(lease: Lease) -> LeaseOut:
    return LeaseOut(id=lease.id, ttl=lease.ttl, expires_at=datetime_of_ms(lease.expires_ms))


@router.post(
    "/leases",
    status_code=201,
    response_model=LeaseOut,
    responses=PROBLEM_RESPONSES(401, 422, 429),
    summary="Grant a lease",
    operation_id="leases_grant",
    openapi_extra=body_examples(thirty_seconds={"ttl": 30}),
)
async def grant_lease(body: LeaseGrant, claims: WriteClaims, coord: Coord) -> LeaseOut:
    """A new lease living `ttl` seconds (1 to 86400) unless kept alive. Write keys with `?lease=<id>`
    to make them expire with it; hold locks with it. At most 10000 live leases per tenant (429).
    Needs `kv:write`."""
    return _lease(await coord.grant(claims.tenant_id, body.ttl))


@router.post(
    "/leases/{lease_id}/keepalive",
    response_model=LeaseOut,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Keep a lease alive",
    operation_id="leases_keepalive",
)
async def keepalive_lease(lease_id: LeaseId, claims: WriteClaims, coord: Coord) -> LeaseOut:
    """Renew the lease for its `ttl` from now, with the expiry of every key attached to it (no new
    version or watch event for them); 404 once it has expired or was revoked. Needs `kv:write`."""
    return _lease(await coord.keepalive(claims.tenant_id, lease_id))


@router.get(
    "/leases/{lease_id}",
    response_model=LeaseInfo,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Show a lease",
    operation_id="leases_get",
)
async def get_lease(lease_id: LeaseId, claims: ReadClaims, coord: Coord) -> LeaseInfo:
    """The lease's ttl, the seconds it has left and its live attached keys; 404 once it has expired
    or was revoked. Needs `kv:read`."""
    lease = await coord.info(claims.tenant_id, lease_id)
    return LeaseInfo(
        id=lease.id,
        ttl=lease.ttl,
        expires_at=datetime_of_ms(lease.expires_ms),
        remaining=round(lease.remaining, 3),
        keys=[LeaseKeyOut(bucket=k.bucket, key=k.key) for k in lease.keys],
    )


def _audit_deleted(request: Request, deleted: list[tuple[LeaseKey, str]]) -> None:
    """One audit event per key the revocation deleted, as a DELETE of it records (expiries are
    audited by the script itself, as kv.expire)."""
    audit: AuditService = request.app.state.audit
    for key, op in deleted:
        if op == "delete":
            audit.record_change("kv.delete_key", 200, key.bucket, key.key)


@router.delete(
    "/leases/{lease_id}",
    response_model=LeaseRevoked,
    responses=PROBLEM_RESPONSES(401, 404, 422),
    summary="Revoke a lease",
    operation_id="leases_revoke",
)
async def revoke_lease(lease_id: LeaseId, request: Request, claims: WriteClaims, coord: Coord) -> LeaseRevoked:
    """End the lease now: every key attached to it is deleted in one atomic step (a `delete` watch
    event each) and the locks it holds are free. 404 when it has expired or was revoked already.
    Needs `kv:write`."""
    deleted = await coord.revoke(claims.tenant_id, lease_id)
    _audit_deleted(request, deleted)
    return LeaseRevoked(message="Lease revoked", deleted=[LeaseKeyOut(bucket=k.bucket, key=k.key) for k, _ in deleted])


@router.post(
    "/locks/{name}",
    response_model=LockOut,
    responses=PROBLEM_RESPONSES(401, 404, 409, 422),
    summary="Acquire a lock",
    operation_id="locks_acquire",
    openapi_extra=body_examples(wait_ten_seconds={"lease": "9f2c4e1a7b3d5c80", "wait": 10}),
)
async def acquire_lock(name: LockName, body: LockAcquire, claims: WriteClaims, coord: Coord) -> LockOut:
    """Take the lock for `lease`, waiting up to `wait` seconds (at most 60) in order of arrival;
    409 `lock_held` with the `holder` lease when the wait ends first. The answer's `token` (the
    fencing token) is larger with every acquisition of the lock: give it to the storage you
    protect, so it can refuse a stale holder. A lease that holds the lock already gets its
    acquisition again. The lock is free again when its lease is revoked or expires. Needs `kv:write`."""
    audit_note(key=name)
    state, _ = await coord.acquire(claims.tenant_id, name, body.lease, body.wait)
    return LockOut(name=name, lease=body.lease, token=state.token, acquired_at=datetime_of_ms(state.acquired_ms or 0))


@router.delete(
    "/locks/{name}",
    response_model=LockReleased,
    responses=PROBLEM_RESPONSES(401, 404, 409, 422),
    summary="Release a lock",
    operation_id="locks_release",
)
async def release_lock(
    name: LockName,
    claims: WriteClaims,
    coord: Coord,
    lease: Annotated[str, Query(max_length=64, description="The lease holding the lock")],
    token: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Release only this acquisition")] = None,
) -> LockReleased:
    """Release the lock held by `lease` (and, with `token`, only that acquisition). 409
    `not_lock_holder` when the lease does not hold it: another does, or its lease ended (then the
    lock was released already). Needs `kv:write`."""
    released = await coord.release(claims.tenant_id, name, lease, token)
    return LockReleased(message="Lock released", token=released)


@router.get(
    "/locks/{name}",
    response_model=LockInfo,
    responses=PROBLEM_RESPONSES(401, 422),
    summary="Show a lock",
    operation_id="locks_get",
)
async def get_lock(name: LockName, claims: ReadClaims, coord: Coord) -> LockInfo:
    """The lease holding the lock (null when free), the last fencing token given, and how many wait.
    Needs `kv:read`."""
    state, waiters = await coord.lock_info(claims.tenant_id, name)
    return LockInfo(
        name=name,
        holder=state.holder,
        token=state.token,
        acquired_at=datetime_of_ms(state.acquired_ms) if state.acquired_ms else None,
        waiters=waiters,
    )
