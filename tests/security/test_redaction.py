"""Secrets masked on every output path: the redactor, and the log processor as the app
configures it (the end-to-end hunt is tests/security/test_secret_hunt.py)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from bot.log import configure_logging
from bot.redaction import MASK, redact, redact_value, register_secret

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join("MIIEowIBAAKCAQEA" + f"{n:048d}" for n in range(5))
    + "\n-----END RSA PRIVATE KEY-----\n"
)


def test_known_secrets_and_each_line_of_a_key_are_masked() -> None:
    register_secret("s3cret-webhook-value")
    register_secret(PEM)
    assert redact("sig s3cret-webhook-value!") == f"sig {MASK}!"
    assert MASK in redact(PEM) and "MIIEow" not in redact(PEM)
    one_line = PEM.splitlines()[2]
    assert redact(f"leaked: {one_line}") == f"leaked: {MASK}"


@pytest.mark.parametrize(
    "token",
    [
        "ghs_" + "a" * 36,
        "ghp_" + "B1" * 18,
        "gho_" + "c" * 36,
        "github_pat_" + "11ABCDEFG0" * 6,
        "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----",
    ],
)
def test_token_shapes_are_masked_even_when_unknown(token: str) -> None:
    assert redact(f"x {token} y") == f"x {MASK} y"


def test_a_key_cut_off_is_masked_to_the_end() -> None:
    assert redact("x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk y") == f"x {MASK}"


def test_short_secrets_are_not_masked_so_words_survive() -> None:
    register_secret("EMPTY")
    assert redact("EMPTY handed") == "EMPTY handed"


def test_redact_value_walks_containers() -> None:
    register_secret("another-secret-1")
    value = {"k": ["another-secret-1", ("another-secret-1", 3)], "another-secret-1": None}
    assert redact_value(value) == {"k": [MASK, (MASK, 3)], MASK: None}


def test_log_lines_are_masked_including_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret("log-secret-value-42")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json=True)
    try:
        log = structlog.get_logger("test")
        log.info("event", detail="token log-secret-value-42", other="ghs_" + "z" * 36)
        try:
            raise RuntimeError("failed with log-secret-value-42")
        except RuntimeError:
            log.exception("boom")
        logging.getLogger("uvicorn.error").warning("stdlib log-secret-value-42")
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 3
    text = json.dumps(lines)
    assert "log-secret-value-42" not in text and "zzzz" not in text
    assert lines[0]["detail"] == f"token {MASK}"
    assert MASK in lines[1]["exception"]
