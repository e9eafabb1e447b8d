"""Fixtures of the command-line tests beyond `tests/conftest.py`: experiments with metric
rows for the commands that read results (`ewc results`, `ewc artifacts prune`, ...)."""

from tests.fixtures.dashboard import make_experiment  # noqa: F401 - a fixture
