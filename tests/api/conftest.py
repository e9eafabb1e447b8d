"""Fixtures of the v1 API tests: the real app with setting overrides (`make_client`,
`client`, `admin`, `user_headers`, `spec`: `tests/fixtures/api_client.py`), and the app with
finished experiments to report on (`api`, `admin_id`, `make_experiment`:
`tests/fixtures/dashboard.py`)."""

from tests.fixtures.api_client import (  # noqa: F401 - fixtures
    admin,
    client,
    make_client,
    make_settings,
    spec,
    user_headers,
)
from tests.fixtures.dashboard import (  # noqa: F401 - fixtures
    admin_id,
    api,
    app_settings,
    make_experiment,
)
