"""The run viewer's end-to-end test drives the whole app as the end-to-end suites do."""

from __future__ import annotations

from tests.e2e.conftest import make_harness

__all__ = ["make_harness"]
