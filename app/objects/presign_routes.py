"""POST /objects/buckets/{bucket}/objects/{name}/presign: a URL that reads or writes one object
without an Authorization header (app/objects/presign.py says what it carries and how it is checked).
The URL is the object's own route, which app/objects/deps.py authenticates by its signature."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from app.auth.deps import CurrentClaims, SettingsDep, require_scope
from app.objects.deps import PresignerDep
from app.objects.presign import Grant, credential_of, object_path
from app.objects.routes import OBJECT, BucketName, ObjectName
from app.objects.rules import check_object_name
from app.objects.schemas import PresignCreate, PresignOut
from app.platform.errors import InvalidInput
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES

router = APIRouter(prefix="/objects", tags=["objects"])


@router.post(
    OBJECT + "/presign",
    response_model=PresignOut,
    responses=PROBLEM_RESPONSES(401, 403, 422),
    name="objects.presign",
    summary="Create a presigned URL",
    operation_id="objects_presign",
    openapi_extra=body_examples(
        read={"method": "GET", "expires_in": 600},
        upload={"method": "PUT", "expires_in": 3600, "content_type": "image/png", "max_bytes": 5000000},
    ),
)
async def presign_object(
    bucket: BucketName,
    name: ObjectName,
    body: PresignCreate,
    request: Request,
    claims: CurrentClaims,
    presigner: PresignerDep,
    settings: SettingsDep,
) -> PresignOut:
    """A URL that GETs (or HEADs) or PUTs this object with no Authorization header, until it expires
    or the credential that asked for it ends (the session, or the API key). The object need not exist
    yet. An API key needs the scope of the method it signs (objects:read for GET, objects:write for
    PUT) on this bucket and name; the URL never allows more than its creator."""
    check_object_name(name, settings.max_object_name_bytes)
    require_scope(claims, "objects:write" if body.method == "PUT" else "objects:read")
    longest = settings.refresh_token_expire_days * 86_400
    if body.expires_in > longest:
        raise InvalidInput(f"expires_in must be at most {longest} s (the refresh-token lifetime)")
    now = int(time.time())
    grant = Grant(
        method=body.method,
        tenant_id=claims.tenant_id,
        bucket=bucket,
        name=name,
        credential=credential_of(claims),
        issued=now,
        expires=now + body.expires_in,
        max_bytes=body.max_bytes or 0,
        content_type=body.content_type or "",
    )
    base = str(request.base_url).rstrip("/")
    url = f"{base}{object_path(settings.api_prefix, bucket, name)}?{presigner.query(grant)}"
    return PresignOut(url=url, method=body.method, expires_at=datetime.fromtimestamp(grant.expires, UTC))
