"""The dashboard's Webhooks page (`/ui/webhooks`): your webhooks and their recent
deliveries, read-only (add and remove them with `ewc webhooks` or `/v1/webhooks`)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep, SettingsDep
from api.routes.dashboard.common import PageUser, make_router, render
from api.services import webhooks as service

router = make_router()

#: Deliveries the page shows, newest first.
PAGE_DELIVERIES = 50


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, user: PageUser, session: SessionDep, settings: SettingsDep):
    hooks = service.listing(session, user, everyone=False)
    deliveries = service.deliveries(session, settings, user, None, PAGE_DELIVERIES)
    return render(request, "webhooks.html", user, hooks=hooks, deliveries=deliveries)
