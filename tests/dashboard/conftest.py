"""Fixtures of the dashboard page tests (`tests/fixtures/dashboard.py`): the app with the
admin's bearer token (`api`) or logged in through the login form (`ui`), and finished
experiments with metrics."""

from tests.fixtures.dashboard import (  # noqa: F401 - fixtures
    admin_id,
    api,
    app_settings,
    make_experiment,
    ui,
)
