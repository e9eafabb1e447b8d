"""The web dashboard under `/ui`: server-rendered Jinja2 pages over the same store.

Log in with an API token; that opens a server-side browser session whose random id is kept
in an HttpOnly, SameSite=Lax cookie (never the token itself), which every `/ui` route
accepts (`/v1` keeps bearer auth). Every form that changes something is checked against
cross-site request forgery (`guard`), and every response carries a strict Content Security
Policy and the other security headers (`common`).

- `auth`: log in, log out, the static files, `/` → `/ui/`;
- `pages`: the experiment list, an experiment's detail (plots, events, exports,
  artifacts), the comparison, a sweep's page;
- `forms`: cancel, the new-experiment form, the sweeps list with its form;
- `manage`: an experiment's Re-run, Edit, Archive and Restore buttons;
- `webhooks`: your webhooks and their recent deliveries (read-only);
- `datasets`: the uploaded datasets, an upload form, delete for their owner or an admin.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes.dashboard import auth, datasets, forms, manage, pages, webhooks

#: The dashboard's routers, for `api.routes.ROUTERS` (none of their paths overlap).
ROUTERS: tuple[APIRouter, ...] = (
    auth.router, pages.router, forms.router, manage.router, webhooks.router, datasets.router,
    auth.root_router,
)
