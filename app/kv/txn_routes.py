"""POST /kv/txn: compares and operations over any of the tenant's buckets, as one atomic step."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ValidationError

from app.audit.service import AuditService
from app.auth.deps import BearerClaims, require_resource
from app.kv.coord_model import Compare, TxnOp, TxnOperationInvalid, TxnOutcome
from app.kv.coord_schemas import (
    TxnBody,
    TxnCompareBody,
    TxnDeleteBody,
    TxnGetBody,
    TxnPatchBody,
    TxnPutBody,
    TxnResult,
)
from app.kv.schemas import encode_value
from app.kv.service import KVService
from app.kv.txn import MAX_TXN_COMPARES, MAX_TXN_OPS
from app.platform.http.openapi import body_examples
from app.platform.http.problems import validation_errors
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.platform.security import AccessClaims

router = APIRouter(prefix="/kv", tags=["kv"])

txn_claims = BearerClaims("kv:write")

OP_MODELS: dict[str, type[BaseModel]] = {
    "put": TxnPutBody,
    "delete": TxnDeleteBody,
    "get": TxnGetBody,
    "patch": TxnPatchBody,
}
AUDIT_ACTIONS = {"put": "kv.put_key", "patch": "kv.patch_key", "delete": "kv.delete_key"}

EXAMPLE = {
    "compare": [
        {"bucket": "config", "key": "flags", "version": 3},
        {"key": "leader", "exists": False},
        {"key": "limit", "value": 10},
    ],
    "success": [
        {"op": "put", "bucket": "config", "key": "flags", "value": {"beta": True}},
        {"op": "delete", "key": "old"},
        {"op": "get", "key": "limit"},
        {"op": "patch", "key": "doc", "patch": {"a": 1}},
    ],
    "failure": [{"op": "get", "bucket": "config", "key": "flags"}],
}


def _invalid(where: str, index: int, message: str, errors: list[dict[str, Any]] | None = None) -> TxnOperationInvalid:
    return TxnOperationInvalid(
        f"{where}[{index}]: {message}",
        branch=where,
        index=index,
        errors=errors or [{"field": f"body.{where}.{index}", "message": message, "type": "value_error"}],
    )


def _validated(model: type[BaseModel], raw: Any, where: str, index: int) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = validation_errors([dict(error) for error in exc.errors()])
        for error in errors:
            error["field"] = f"body.{where}.{index}.{error['field']}".rstrip(".")
        raise _invalid(where, index, errors[0]["message"], errors) from exc


def _value(value: Any, encoding: str | None, max_depth: int, where: str, index: int) -> str:
    try:
        return encode_value(value, encoding, max_depth)
    except ValueError as exc:
        raise _invalid(where, index, str(exc)) from exc


def parse_compare(raw: Any, index: int, kv: KVService, claims: AccessClaims) -> Compare:
    body: TxnCompareBody = _validated(TxnCompareBody, raw, "compare", index)
    require_resource(claims, body.bucket, body.key)
    if body.version is not None:
        return Compare(body.bucket, body.key, "version", body.op, str(body.version))
    if body.revision is not None:
        return Compare(body.bucket, body.key, "revision", body.op, str(body.revision))
    if body.exists is not None:
        return Compare(body.bucket, body.key, "exists", "=", "1" if body.exists else "0")
    return Compare(
        body.bucket, body.key, "value", body.op, _value(body.value, None, kv.max_json_depth, "compare", index)
    )


def parse_op(raw: Any, where: str, index: int, kv: KVService, claims: AccessClaims) -> TxnOp:
    name = raw.get("op") if isinstance(raw, dict) else None
    model = OP_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise _invalid(where, index, "op must be one of put, delete, get, patch")
    body = _validated(model, raw, where, index)
    require_resource(claims, body.bucket, body.key)
    if isinstance(body, TxnPutBody):
        value = _value(body.value, body.encoding, kv.max_json_depth, where, index)
        return TxnOp("put", body.bucket, body.key, value, body.encoding, body.ttl, body.tags, body.lease)
    if isinstance(body, TxnPatchBody):
        return TxnOp("patch", body.bucket, body.key, patch=body.patch)
    return TxnOp(body.op, body.bucket, body.key)


def render(outcome: TxnOutcome) -> bytes:
    parts = []
    for op, entry, deleted in zip(outcome.ops, outcome.entries, outcome.deleted, strict=True):
        head = f'{{"op":"{op.op}","bucket":"{op.bucket}","key":"{op.key}"'.encode()
        if op.op == "delete":
            parts.append(head + f',"deleted":{json.dumps(deleted)}}}'.encode())
        else:
            now = outcome.now_ms or (entry.updated_ms if entry else 0)
            parts.append(head + b',"entry":' + (entry.render(now) if entry else b"null") + b"}")
    succeeded = b"true" if outcome.succeeded else b"false"
    return b'{"succeeded":' + succeeded + b',"results":[' + b",".join(parts) + b"]}"


def audit_changes(request: Request, outcome: TxnOutcome) -> None:
    """One audit event per change, as the single write would have recorded it."""
    audit: AuditService = request.app.state.audit
    for op, entry, deleted in zip(outcome.ops, outcome.entries, outcome.deleted, strict=True):
        if op.op == "get" or (op.op == "delete" and not deleted):
            continue
        audit.record_change(
            AUDIT_ACTIONS[op.op], 201 if entry is not None and entry.created else 200, op.bucket, op.key
        )


@router.post(
    "/txn",
    response_model=TxnResult,
    responses=PROBLEM_RESPONSES(401, 403, 404, 409, 413, 422),
    summary="Run a transaction",
    operation_id="kv_txn",
    openapi_extra=body_examples(
        config_rollout=EXAMPLE,
        create_if_absent={
            "compare": [{"key": "leader", "exists": False}],
            "success": [{"op": "put", "key": "leader", "value": "node-1"}],
            "failure": [{"op": "get", "key": "leader"}],
        },
    ),
)
async def txn(body: TxnBody, request: Request, claims: Annotated[AccessClaims, Depends(txn_claims)]) -> Response:
    """If every `compare` holds, run the `success` operations, else the `failure` ones: all as one
    atomic step across any buckets of the tenant. Compares: `version`, `revision` (with `op` `=`,
    `!=`, `<`, `>`), `exists` (true/false), `value` (`=` or `!=`, JSON equality); an absent key has
    version and revision 0. Operations: `put` (value, encoding?, ttl?, tags?, lease?), `delete`,
    `get`, `patch` (an RFC 7396 merge patch); `bucket` defaults to `default`. Answers `{succeeded,
    results}` with one result per operation of the branch run. Each change gets its history, watch
    event, audit event and quota accounting as a single write would. At most 64 compares and 64
    operations per branch (413); a malformed compare or operation is 422 naming its branch and index;
    a key written twice in one branch is 422. Needs `kv:write`."""
    kv: KVService = request.app.state.kv_service
    # Past a limit, one item more than it is enough for the service to refuse (413).
    compares = [parse_compare(raw, i, kv, claims) for i, raw in enumerate(body.compare[: MAX_TXN_COMPARES + 1])]
    success = [parse_op(raw, "success", i, kv, claims) for i, raw in enumerate(body.success[: MAX_TXN_OPS + 1])]
    failure = [parse_op(raw, "failure", i, kv, claims) for i, raw in enumerate(body.failure[: MAX_TXN_OPS + 1])]
    outcome = await kv.txn(claims.tenant_id, compares, success, failure)
    audit_changes(request, outcome)
    return Response(render(outcome), media_type="application/json")
