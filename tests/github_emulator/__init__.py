"""An in-memory GitHub for tests: REST (GHES-style `/api/v3`), git smart HTTP, signed webhooks."""

from tests.github_emulator.emulator import GitHubEmulator
from tests.github_emulator.webhooks import deliver, deliver_async, signature_of, signed_delivery

__all__ = ["GitHubEmulator", "deliver", "deliver_async", "signature_of", "signed_delivery"]
