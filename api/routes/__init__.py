"""Every router of the app, registered in one place (`ROUTERS`, included by
`api.app.create_app` in this order).

One router per resource: experiments, manage (re-run, edit, archive), logs, reports
(plots, comparison, exports), events, artifacts, sweeps, datasets, webhooks, queues,
health (healthz/readyz/metrics), and the dashboard (`api.routes.dashboard`, one router
per page group). A route module parses, calls a
service (`api.services`) or a `store` function, and shapes the answer; it never imports
another route module.

The order matters for one pair only, and `tests/api/test_api_routes.py` proves that no
route is shadowed by one registered before it: `GET /v1/experiments/compare` and
`GET /v1/experiments/table` (reports) must come before `GET /v1/experiments/{experiment_id}`
(experiments), which would otherwise read "compare" or "table" as an id and answer 422.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    artifacts,
    dashboard,
    datasets,
    events,
    experiments,
    health,
    logs,
    manage,
    queues,
    reports,
    sweeps,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    reports.router,  # before experiments: /v1/experiments/compare and /table are not ids
    experiments.router,
    manage.router,
    logs.router,
    events.router,
    artifacts.router,
    sweeps.router,
    datasets.router,
    webhooks.router,
    queues.router,
    health.router,
    *dashboard.ROUTERS,
)
