"""Fixtures of the store tests beyond `tests/conftest.py`: experiments with metric rows."""

from tests.fixtures.dashboard import make_experiment  # noqa: F401 - a fixture
