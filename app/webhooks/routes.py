"""/webhooks: register endpoints that the worker calls with the tenant's changes (README "Webhooks")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from app.auth.deps import AdminClaims
from app.platform.errors import InvalidInput
from app.platform.http.openapi import body_examples
from app.platform.http.schemas import PROBLEM_RESPONSES
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookList,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from app.webhooks.service import WebhookService

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

MAX_PAGE = 100


async def get_webhooks(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
HookId = Annotated[str, Path(max_length=64, description="The webhook's id (wh_...)")]
DeliveryId = Annotated[str, Path(max_length=20, description="The delivery's id, from the deliveries list")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses=PROBLEM_RESPONSES(401, 403, 409, 422),
    summary="Register a webhook",
    operation_id="webhooks_create",
    openapi_extra=body_examples(
        config_changes={
            "url": "https://hooks.example.com/kvstore",
            "buckets": ["config"],
            "events": ["kv.put", "kv.delete", "kv.expire"],
            "key_prefix": "app:",
            "description": "reload the app's settings",
        },
        every_object={"url": "https://hooks.example.com/photos", "buckets": ["*"], "events": ["object.put"]},
    ),
)
async def create_webhook(body: WebhookCreate, claims: AdminClaims, webhooks: WebhooksDep) -> WebhookWithSecret:
    """201 with the webhook and its signing `secret` (`whsec_…`, shown only here and on rotation).
    From now on every matching change of the named buckets (`["*"]`: all) is POSTed to `url`, signed
    per Standard Webhooks. 422 `unsafe_webhook_url` for http:// (unless allowed), or a host that resolves
    to a loopback, private, link-local or metadata address; 409 `too_many_webhooks` over the tenant's
    limit. Needs a login session or the `admin` scope (an API key only for buckets and keys it may use)."""
    hook = await webhooks.create(
        claims,
        url=body.url,
        buckets=body.buckets,
        events=list(body.events),
        key_prefix=body.key_prefix,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookWithSecret(secret=hook.secret, **WebhookOut.of(hook).model_dump())


@router.get(
    "",
    response_model=WebhookList,
    responses=PROBLEM_RESPONSES(401, 403),
    summary="List webhooks",
    operation_id="webhooks_list",
)
async def list_webhooks(claims: AdminClaims, webhooks: WebhooksDep) -> WebhookList:
    """Every webhook of the tenant, without secrets; a disabled one shows `disabled_reason`."""
    return WebhookList(items=[WebhookOut.of(hook) for hook in await webhooks.list_all(claims)])


@router.get(
    "/{hook_id}",
    response_model=WebhookOut,
    responses=PROBLEM_RESPONSES(401, 403, 404),
    summary="Get a webhook",
    operation_id="webhooks_get",
)
async def get_webhook(hook_id: HookId, claims: AdminClaims, webhooks: WebhooksDep) -> WebhookOut:
    """The webhook, without its secret: `enabled`, `failing_since` and `disabled_reason` tell how its
    deliveries go. 404 `webhook_not_found`."""
    return WebhookOut.of(await webhooks.get(claims, hook_id))


@router.patch(
    "/{hook_id}",
    response_model=WebhookOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 422),
    summary="Change a webhook",
    operation_id="webhooks_update",
    openapi_extra=body_examples(
        enable_again={"enabled": True},
        move={"url": "https://hooks.example.com/v2", "events": ["kv.put"]},
    ),
)
async def update_webhook(
    hook_id: HookId, body: WebhookUpdate, claims: AdminClaims, webhooks: WebhooksDep
) -> WebhookOut:
    """Changes the fields sent (`url`, `buckets`, `events`, `key_prefix`, `description`, `enabled`).
    `enabled: true` resumes a disabled webhook where it stopped (a `gap` delivery tells what the change
    feeds no longer hold); buckets newly named are followed from now on."""
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise InvalidInput("a field of a webhook cannot be set to null")
    if not changes:
        raise InvalidInput("send at least one field to change")
    return WebhookOut.of(await webhooks.update(claims, hook_id, changes))


@router.delete(
    "/{hook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEM_RESPONSES(401, 403, 404),
    summary="Delete a webhook",
    operation_id="webhooks_delete",
)
async def delete_webhook(hook_id: HookId, claims: AdminClaims, webhooks: WebhooksDep) -> Response:
    """204: nothing more is sent to it (an attempt under way may still arrive); its deliveries go too."""
    await webhooks.delete(claims, hook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{hook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 409),
    summary="Send a test event",
    operation_id="webhooks_test",
)
async def test_webhook(hook_id: HookId, claims: AdminClaims, webhooks: WebhooksDep) -> DeliveryOut:
    """202: a `webhook.test` event joins the end of the webhook's queue; the worker sends it like any
    other (see its delivery in `.../deliveries`). 409 `webhook_backlog_full` when the queue is full."""
    return DeliveryOut.of(await webhooks.test(claims, hook_id))


@router.post(
    "/{hook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    responses=PROBLEM_RESPONSES(401, 403, 404),
    summary="Rotate a webhook's secret",
    operation_id="webhooks_rotate_secret",
)
async def rotate_secret(hook_id: HookId, claims: AdminClaims, webhooks: WebhooksDep) -> WebhookWithSecret:
    """A new signing secret, shown only in this answer; every attempt from now on is signed with it."""
    hook = await webhooks.rotate_secret(claims, hook_id)
    return WebhookWithSecret(secret=hook.secret, **WebhookOut.of(hook).model_dump())


@router.get(
    "/{hook_id}/deliveries",
    response_model=DeliveryPage,
    responses=PROBLEM_RESPONSES(401, 403, 404, 422),
    summary="List a webhook's deliveries",
    operation_id="webhooks_deliveries",
)
async def list_deliveries(
    hook_id: HookId,
    claims: AdminClaims,
    webhooks: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Deliveries per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=20, description="next_cursor of the previous page")] = None,
) -> DeliveryPage:
    """Newest first: event id (`webhook-id`), type, key, attempts, last status and the first bytes of
    the answer, latency, next attempt and state (`pending`, `retrying`, `delivered`). The last
    `WEBHOOK_DELIVERIES_KEPT` finished deliveries are kept, every waiting one."""
    before = 0
    if cursor is not None:
        if not cursor.isascii() or not cursor.isdigit():
            raise InvalidInput("cursor is the next_cursor of a previous page")
        before = int(cursor)
    items = await webhooks.deliveries(claims, hook_id, before, limit)
    next_cursor = str(items[-1].seq) if len(items) == limit else None
    return DeliveryPage(items=[DeliveryOut.of(item) for item in items], next_cursor=next_cursor)


@router.post(
    "/{hook_id}/deliveries/{delivery}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses=PROBLEM_RESPONSES(401, 403, 404, 409, 422),
    summary="Retry a delivery",
    operation_id="webhooks_retry_delivery",
)
async def retry_delivery(
    hook_id: HookId, delivery: DeliveryId, claims: AdminClaims, webhooks: WebhooksDep
) -> DeliveryOut:
    """202: a waiting delivery is attempted at once (no more waiting for its backoff); a delivered one
    is sent again, with the same `webhook-id`, from the end of the queue. 404 `delivery_not_found`."""
    return DeliveryOut.of(await webhooks.retry(claims, hook_id, delivery))
