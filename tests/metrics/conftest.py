"""The end-to-end harness of tests/e2e, shared with the worker metrics test."""

from tests.e2e.conftest import make_harness

__all__ = ["make_harness"]
