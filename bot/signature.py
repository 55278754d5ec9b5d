"""Webhook signatures: GitHub's `X-Hub-Signature-256`, an HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, body: bytes) -> str:
    """The header value GitHub would send for this body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def is_valid_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is GitHub's signature of `body`; constant time."""
    # Servers hand header bytes over as latin-1 text, and `hmac.compare_digest` raises on
    # non-ASCII str: such a header is simply not a signature.
    if not header or not header.isascii() or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header)
