"""`/v1/webhooks`: your webhooks (a URL called when your experiments and sweeps end) and
their delivery log. Handlers parse, call `api.services.webhooks` / `store.webhooks`, and
shape the answer; deliveries are made by the workers (`worker.webhooks`)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.deps import MAX_ID, CurrentUser, SessionDep, SettingsDep
from api.schemas import ErrorMessage, ProblemList
from api.services import webhooks as service
from common.schemas_webhooks import (
    DeliveryList,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from store import webhooks

log = logging.getLogger("ewc.api")

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)

WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="Webhook id")]
Limit = Annotated[int, Query(ge=1, le=200, description="Most deliveries, newest first")]
_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No webhook of yours with this id"}}


@router.post(
    "",
    operation_id="create_webhook",
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"model": ProblemList, "description": "Not an http(s) URL, or an unknown event"},
        429: {"model": ErrorMessage, "description": "Already the most webhooks one user may have"},
    },
)
def create_webhook(body: WebhookIn, user: CurrentUser, session: SessionDep) -> WebhookCreated:
    """Add a webhook: `url` gets a signed JSON POST when one of your experiments (or sweeps)
    ends. The answer holds the signing `secret`, shown this once."""
    hook = webhooks.create_webhook(session, user.id, body.url, body.events)
    log.info("event=webhook_created webhook_id=%s owner=%s", hook.id, user.name)
    return service.created_out(hook, user.name)


@router.get(
    "",
    operation_id="list_webhooks",
    responses={403: {"model": ErrorMessage, "description": "`all` asked by a non-admin"}},
)
def list_webhooks(
    user: CurrentUser,
    session: SessionDep,
    everyone: Annotated[
        bool, Query(alias="all", description="Everyone's webhooks (admins only)")
    ] = False,
) -> WebhookList:
    """Your webhooks (secrets by their first characters only)."""
    if everyone and not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may list everyone's webhooks")
    return WebhookList(items=service.listing(session, user, everyone))


@router.get("/deliveries", operation_id="list_all_deliveries")
def list_all_deliveries(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, limit: Limit = 50
) -> DeliveryList:
    """The newest deliveries of all your webhooks."""
    return DeliveryList(items=service.deliveries(session, settings, user, None, limit))


@router.get("/{webhook_id}", operation_id="get_webhook", responses=_NOT_FOUND)
def get_webhook(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> WebhookOut:
    """One of your webhooks."""
    return service.webhook_out(webhooks.get_webhook(session, webhook_id, user.id), user.name)


@router.delete(
    "/{webhook_id}",
    operation_id="delete_webhook",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
def delete_webhook(webhook_id: WebhookId, user: CurrentUser, session: SessionDep) -> Response:
    """Remove a webhook and its delivery log (yours; an admin may remove any)."""
    hook = webhooks.get_webhook(session, webhook_id, None if user.is_admin else user.id)
    webhooks.delete_webhook(session, hook)
    log.info("event=webhook_deleted webhook_id=%s by=%s", webhook_id, user.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", operation_id="list_deliveries", responses=_NOT_FOUND)
def list_deliveries(
    webhook_id: WebhookId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = 50,
) -> DeliveryList:
    """The webhook's newest deliveries: event, status, attempts, the receiver's last status
    code or error, times and payload. Only its owner sees them."""
    return DeliveryList(items=service.deliveries(session, settings, user, webhook_id, limit))


@router.post(
    "/{webhook_id}/test",
    operation_id="test_webhook",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_NOT_FOUND,
)
def test_webhook(
    webhook_id: WebhookId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> DeliveryOut:
    """Queue a `ping` delivery to the webhook; a worker sends it within a second or two
    (see its deliveries for how it went)."""
    hook = webhooks.get_webhook(session, webhook_id, user.id)
    return service.delivery_out(webhooks.queue_ping(session, hook), settings)
