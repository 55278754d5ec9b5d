"""The GitHub App manifest (`app.yml`), the pure parts of `qwen-fix app create`, and the whole
flow end to end against the GitHub emulator: browser → GitHub → callback → .env → a working key.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dotenv import dotenv_values

from bot.github import GitHubApp
from bot.manifest import (
    APP_MANIFEST_PATH,
    CreatedApp,
    GitHubHost,
    ManifestFlowError,
    build_manifest,
    env_file_with,
    env_line,
    exchange_code,
    load_manifest_template,
    run_manifest_flow,
    webhook_target,
    write_env_file,
)
from bot.receiver import WEBHOOK_PATH
from bot.settings import Settings
from tests.fixtures import openapi_description, webhook_examples
from tests.github_emulator.emulator import GitHubEmulator

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbC+/=\n-----END RSA PRIVATE KEY-----\n"
NEEDED_EVENTS = {
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_suite",
    "workflow_run",
}
NEEDED_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "checks": "write",
    "actions": "read",
    "metadata": "read",
}

# --- app.yml ------------------------------------------------------------------------------------


def test_the_manifest_asks_for_exactly_what_the_app_needs() -> None:
    manifest = load_manifest_template()
    assert manifest["name"] == "qwen-fix"
    assert manifest["public"] is False
    assert manifest["hook_attributes"]["active"] is True
    assert set(manifest["default_events"]) == NEEDED_EVENTS
    assert len(manifest["default_events"]) == len(NEEDED_EVENTS)
    assert manifest["default_permissions"] == NEEDED_PERMISSIONS


def test_events_and_permissions_are_ones_github_knows() -> None:
    manifest = load_manifest_template()
    for event in manifest["default_events"]:
        assert webhook_examples(event), event  # KeyError for an event GitHub never sends
    permissions = openapi_description()["components"]["schemas"]["app-permissions"]["properties"]
    for name, access in manifest["default_permissions"].items():
        assert access in permissions[name]["enum"], name


def test_every_permission_and_event_says_why_it_is_needed() -> None:
    lines = APP_MANIFEST_PATH.read_text().splitlines()
    entries = [
        index
        for index, line in enumerate(lines)
        if re.fullmatch(r"  (- \w+|\w+: (read|write))", line)
    ]
    assert len(entries) == len(NEEDED_EVENTS) + len(NEEDED_PERMISSIONS)
    assert all(lines[index - 1].lstrip().startswith("# ") for index in entries)


# --- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("web", "api"),
    [
        ("https://github.com", "https://api.github.com"),
        ("https://github.com/", "https://api.github.com"),
        ("https://ghe.corp.example", "https://ghe.corp.example/api/v3"),
        ("https://ghe.corp.example:8443/", "https://ghe.corp.example:8443/api/v3"),
        ("https://octo.ghe.com", "https://api.octo.ghe.com"),
    ],
)
def test_the_api_url_follows_from_the_web_url(web: str, api: str) -> None:
    assert GitHubHost.from_web_url(web) == GitHubHost(web.rstrip("/"), api)


def test_the_new_app_page_is_the_users_or_the_organizations() -> None:
    host = GitHubHost.from_web_url("https://ghe.corp.example")
    assert host.new_app_url(None, "s t") == "https://ghe.corp.example/settings/apps/new?state=s%20t"
    assert host.new_app_url("octo-org", "abc") == (
        "https://ghe.corp.example/organizations/octo-org/settings/apps/new?state=abc"
    )


def test_build_manifest_fills_this_deployments_urls_and_keeps_the_rest() -> None:
    template = load_manifest_template()
    manifest = build_manifest(
        template,
        webhook_url="https://bot.example:8443",
        redirect_url="http://127.0.0.1:3000/callback",
        name="qwen-fix-acme",
    )
    assert manifest["url"] == "https://bot.example:8443"
    assert manifest["hook_attributes"] == {
        "url": f"https://bot.example:8443{WEBHOOK_PATH}",
        "active": True,
    }
    assert manifest["redirect_url"] == "http://127.0.0.1:3000/callback"
    assert manifest["name"] == "qwen-fix-acme"
    assert manifest["default_permissions"] == NEEDED_PERMISSIONS
    assert template == load_manifest_template()  # not changed in place


def test_a_webhook_url_with_a_path_is_kept_and_non_http_ones_are_refused() -> None:
    assert webhook_target("https://hooks.example/gh/qwen") == "https://hooks.example/gh/qwen"
    assert webhook_target("https://hooks.example/") == f"https://hooks.example{WEBHOOK_PATH}"
    with pytest.raises(ManifestFlowError, match="http"):
        webhook_target("hooks.example/x")


def test_env_line_quotes_only_what_needs_it() -> None:
    assert env_line("APP_ID", "42") == "APP_ID=42"
    assert env_line("GITHUB_API_URL", "https://h.example/api/v3") == (
        "GITHUB_API_URL=https://h.example/api/v3"
    )
    line = env_line("PRIVATE_KEY", PEM)
    assert "\n" not in line
    assert line.startswith('PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n')
    assert env_line("X", 'a "b" \\c') == 'X="a \\"b\\" \\\\c"'


def test_env_file_with_replaces_its_keys_and_keeps_every_other_line() -> None:
    existing = (
        "# qwen-fix settings\n"
        "REDIS_URL=redis://127.0.0.1:6380\n"
        "export app_id=7\n"
        'PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----\n'
        "old key body\n"
        '-----END RSA PRIVATE KEY-----"\n'
        "MODEL_NAME=Qwen/Qwen3-Coder\n"
        "APP_ID=8\n"
    )
    values = {"APP_ID": "42", "PRIVATE_KEY": PEM, "WEBHOOK_SECRET": "s3cret"}
    text = env_file_with(existing, values)
    assert text.splitlines() == [
        "# qwen-fix settings",
        "REDIS_URL=redis://127.0.0.1:6380",
        "APP_ID=42",
        env_line("PRIVATE_KEY", PEM),
        "MODEL_NAME=Qwen/Qwen3-Coder",
        "WEBHOOK_SECRET=s3cret",
    ]
    parsed = dotenv_values(stream=io.StringIO(text))
    assert parsed["PRIVATE_KEY"] == PEM
    assert parsed["APP_ID"] == "42"
    assert parsed["REDIS_URL"] == "redis://127.0.0.1:6380"


def test_env_file_with_starts_an_empty_file() -> None:
    assert env_file_with("", {"APP_ID": "1"}) == "APP_ID=1\n"
    assert env_file_with("A=1", {"APP_ID": "1"}) == "A=1\nAPP_ID=1\n"


def test_write_env_file_leaves_a_0600_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("KEEP=me\n")
    path.chmod(0o644)
    write_env_file(path, {"APP_ID": "5", "PRIVATE_KEY": PEM})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("KEEP=me\nAPP_ID=5\nPRIVATE_KEY=")
    assert [p.name for p in tmp_path.iterdir()] == [".env"]


def test_the_install_link_is_the_apps_page_plus_installations_new() -> None:
    app = CreatedApp(1, "qf", "qf", "https://ghe.example/github-apps/qf", PEM, "s3cret-value")
    assert app.install_url == "https://ghe.example/github-apps/qf/installations/new"
    assert "PRIVATE" not in repr(app) and "s3cret" not in repr(app)


# --- end to end against the emulator ------------------------------------------------------------


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def no_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment before .env; these tests read .env only."""
    for name in ("APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)


def form_of(page: str) -> tuple[str, str]:
    """The action URL and the `manifest` field of the registration page's form."""
    action = re.search(r'<form action="([^"]+)" method="post">', page)
    manifest = re.search(r'<input type="hidden" name="manifest" value="([^"]*)">', page)
    assert action and manifest, page
    return html.unescape(action.group(1)), html.unescape(manifest.group(1))


@pytest.mark.parametrize("org", [None, "octo-org"])
async def test_the_flow_registers_the_app_and_writes_a_working_env(
    emulator: GitHubEmulator, tmp_path: Path, org: str | None
) -> None:
    env_path = tmp_path / ".env"
    env_path.write_text("REDIS_URL=redis://127.0.0.1:6390\nAPP_ID=1\n")
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    flow = asyncio.create_task(
        run_manifest_flow(
            webhook_url="https://qwen-fix.example",
            github_url=emulator.web_url,
            org=org,
            env_path=env_path,
            port=0,
            on_ready=ready.set_result,
        )
    )
    local = await asyncio.wait_for(ready, 10)
    async with httpx.AsyncClient(timeout=10) as browser:
        start = await browser.get(local)
        action, manifest_json = form_of(start.text)
        owner = f"/organizations/{org}" if org else ""
        assert action.startswith(f"{emulator.web_url}{owner}/settings/apps/new?state=")
        assert f'"redirect_url": "{local}/callback"' in manifest_json
        assert f'"url": "https://qwen-fix.example{WEBHOOK_PATH}"' in manifest_json

        forged = await browser.get(f"{local}/callback", params={"code": "x", "state": "forged"})
        assert forged.status_code == 400
        state = parse_qs(urlsplit(action).query)["state"][0]
        unknown = await browser.get(f"{local}/callback", params={"code": "nope", "state": state})
        assert unknown.status_code == 502
        assert "GitHub refused the code (HTTP 404" in html.unescape(unknown.text)

        # The browser posts the form to GitHub, which sends it back to the callback.
        done = await browser.post(action, data={"manifest": manifest_json}, follow_redirects=True)
    if not done.is_success:
        flow.cancel()  # GitHub never called back: nothing will end the flow
    assert done.status_code == 200, done.text
    assert done.url.path == "/callback"
    created = await asyncio.wait_for(flow, 10)
    assert html.escape(created.install_url) in done.text

    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    assert env_path.read_text().startswith(
        f"REDIS_URL=redis://127.0.0.1:6390\nAPP_ID={created.id}\n"
    )
    settings = Settings(_env_file=env_path)  # type: ignore[call-arg]
    assert settings.app_id == created.id != 1
    assert settings.webhook_secret.get_secret_value() == created.webhook_secret
    assert settings.github_api_url == emulator.api_url
    assert settings.private_key_pem() == created.pem

    # GitHub received the manifest this deployment needs.
    registered = emulator.world.apps[created.id]
    assert registered.webhook_url == f"https://qwen-fix.example{WEBHOOK_PATH}"
    assert registered.permissions == NEEDED_PERMISSIONS
    assert set(registered.events) == NEEDED_EVENTS
    if org:
        assert registered.owner.login == org

    # The written key signs JWTs the emulator accepts as the new app.
    github = GitHubApp(settings.app_id, settings.private_key_pem(), settings.github_api_url)
    me = (await github.app_client.rest.apps.async_get_authenticated()).parsed_data
    assert me is not None and (me.id, me.slug) == (created.id, created.slug)


async def test_a_code_works_once(emulator: GitHubEmulator) -> None:
    manifest = build_manifest(
        load_manifest_template(),
        webhook_url="https://qwen-fix.example",
        redirect_url="http://127.0.0.1:9/callback",
    )
    code = emulator.manifest_code(manifest)
    async with httpx.AsyncClient(timeout=10) as client:
        created = await exchange_code(client, emulator.api_url, code)
        assert created.pem.startswith("-----BEGIN")
        assert created.name == "qwen-fix"
        with pytest.raises(ManifestFlowError, match="HTTP 404"):
            await exchange_code(client, emulator.api_url, code)


async def test_a_bad_webhook_url_is_refused_before_serving() -> None:
    with pytest.raises(ManifestFlowError, match="must be an http"):
        await run_manifest_flow(webhook_url="ftp://hooks.example", port=0)


async def test_an_env_that_cannot_be_written_ends_the_flow_saying_what_to_clean_up(
    emulator: GitHubEmulator, tmp_path: Path
) -> None:
    env_path = tmp_path / "no-such-directory" / ".env"
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    flow = asyncio.create_task(
        run_manifest_flow(
            webhook_url="https://qwen-fix.example",
            github_url=emulator.web_url,
            env_path=env_path,
            port=0,
            on_ready=ready.set_result,
        )
    )
    local = await asyncio.wait_for(ready, 10)
    async with httpx.AsyncClient(timeout=10) as browser:
        action, manifest_json = form_of((await browser.get(local)).text)
        done = await browser.post(action, data={"manifest": manifest_json}, follow_redirects=True)
    if done.status_code != 500:
        flow.cancel()
    assert done.status_code == 500, done.text
    assert "The command has stopped." in done.text
    with pytest.raises(ManifestFlowError, match=r"could not be written .*delete the app at http"):
        await asyncio.wait_for(flow, 10)
    assert not env_path.parent.exists()
