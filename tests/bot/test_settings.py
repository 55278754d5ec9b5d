"""Settings come from the environment and .env; a bad one is named in one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from tests.github_emulator.auth import new_key_pair

KEY = new_key_pair()[0]
PEM = KEY.replace("\n", "\\n")
"""The key as .env files often hold it: on one line, with literal \\n."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "APP_ID",
        "PRIVATE_KEY",
        "PRIVATE_KEY_PATH",
        "WEBHOOK_SECRET",
        "REDIS_URL",
        "MODEL_BASE_URL",
        "MODEL_NAME",
        "WEB_PORT",
        "GITHUB_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_reads_the_environment_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ID", "123")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("PRIVATE_KEY", PEM)
    settings = load_settings()
    assert settings.app_id == 123
    assert settings.private_key_pem() == KEY
    assert settings.model_base_url == "http://127.0.0.1:8000/v1"
    assert settings.model_name == "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"
    assert settings.github_api_url == "https://api.github.com"


def test_reads_dot_env_and_a_key_file(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(KEY)
    (tmp_path / ".env").write_text(
        f"APP_ID=9\nWEBHOOK_SECRET=x\nPRIVATE_KEY_PATH={key}\nREDIS_URL=redis://127.0.0.1:7\n"
    )
    settings = load_settings()
    assert (settings.app_id, settings.redis_url) == (9, "redis://127.0.0.1:7")
    assert settings.private_key_pem() == KEY


def test_every_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "APP_ID is required but not set" in str(error.value)
    assert "WEBHOOK_SECRET is required but not set" in str(error.value)


def test_an_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ID", "twelve")
    monkeypatch.setenv("WEBHOOK_SECRET", "x")
    monkeypatch.setenv("PRIVATE_KEY", PEM)
    monkeypatch.setenv("WEB_PORT", "70000")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "APP_ID" in str(error.value)
    assert "WEB_PORT" in str(error.value)


def test_a_missing_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APP_ID", "1")
    monkeypatch.setenv("WEBHOOK_SECRET", "x")
    monkeypatch.setenv("PRIVATE_KEY_PATH", str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match="PRIVATE_KEY_PATH: no file at"):
        load_settings()


def test_the_command_exits_non_zero_with_the_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "web"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "APP_ID is required but not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("not a pem", "no -----BEGIN"),
        ("-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----", "does not parse"),
    ],
)
def test_a_private_key_that_is_not_one_is_named_at_start(
    monkeypatch: pytest.MonkeyPatch, key: str, said: str
) -> None:
    monkeypatch.setenv("APP_ID", "1")
    monkeypatch.setenv("WEBHOOK_SECRET", "x")
    monkeypatch.setenv("PRIVATE_KEY", key)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "PRIVATE_KEY is not the app's private key" in str(error.value)
    assert said in str(error.value) and "PRIVATE_KEY_PATH" in str(error.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_BASE_URL", "localhost:8000/v1"),
        ("GITHUB_API_URL", "api.github.com"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
    ],
)
def test_urls_that_do_not_parse_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("APP_ID", "1")
    monkeypatch.setenv("WEBHOOK_SECRET", "x")
    monkeypatch.setenv("PRIVATE_KEY", PEM)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert f"{name} {value!r} is not" in str(error.value)
