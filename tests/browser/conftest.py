"""The browser test reuses the end-to-end process fixtures (real API and worker processes)."""

from tests.e2e.conftest import processes  # noqa: F401  (a fixture)
