"""GitHub's webhook signature, checked against a known vector from GitHub's documentation."""

from __future__ import annotations

from bot.signature import is_valid_signature, sign

# From "Validating webhook deliveries" in GitHub's docs: secret, payload and expected header.
DOC_SECRET = b"It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_documented_vector() -> None:
    assert sign(DOC_SECRET, DOC_BODY) == DOC_SIGNATURE


def test_only_the_exact_signature_is_valid() -> None:
    assert is_valid_signature(DOC_SECRET, DOC_BODY, DOC_SIGNATURE)
    assert not is_valid_signature(DOC_SECRET, DOC_BODY + b" ", DOC_SIGNATURE)
    assert not is_valid_signature(b"other secret", DOC_BODY, DOC_SIGNATURE)
    assert not is_valid_signature(DOC_SECRET, DOC_BODY, DOC_SIGNATURE.replace("sha256=", "sha1="))
    assert not is_valid_signature(DOC_SECRET, DOC_BODY, None)
    assert not is_valid_signature(DOC_SECRET, DOC_BODY, "")


def test_a_non_ascii_header_is_invalid_not_an_error() -> None:
    # Servers hand header bytes over as latin-1 text; `hmac.compare_digest` refuses non-ASCII str.
    for header in ("sha256=" + "é" * 64, DOC_SIGNATURE[:-1] + "ÿ", "sha256=\udcff"):
        assert not is_valid_signature(DOC_SECRET, DOC_BODY, header)
