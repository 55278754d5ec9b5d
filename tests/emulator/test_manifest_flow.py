"""The manifest flow walked as a browser and the app would: form post, redirect, conversion."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from githubkit import AppAuthStrategy, GitHub, UnauthAuthStrategy
from githubkit.exception import RequestFailed

from tests.emulator.conftest import Hub

MANIFEST = {
    "name": "Qwen Fix",
    "url": "http://127.0.0.1:3000",
    "hook_attributes": {"url": "http://127.0.0.1:3000/webhook"},
    "redirect_url": "http://127.0.0.1:3000/setup/done",
    "default_permissions": {"issues": "write", "contents": "write", "checks": "write"},
    "default_events": ["issues", "issue_comment"],
}


def confirm(hub: Hub, page: str, state: str) -> str:
    """Post the manifest form as the app's setup page does; returns the code it is sent back."""
    with httpx.Client(base_url=hub.emu.web_url) as browser:
        form = browser.get(page)
        assert form.status_code == 200 and 'name="manifest"' in form.text
        answer = browser.post(f"{page}?state={state}", data={"manifest": json.dumps(MANIFEST)})
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == MANIFEST["redirect_url"]
    query = parse_qs(target.query)
    assert query["state"] == [state]
    return query["code"][0]


def test_a_confirmed_manifest_becomes_an_app_that_can_authenticate(hub: Hub) -> None:
    code = confirm(hub, "/settings/apps/new", "s-1")
    unauthenticated = GitHub(UnauthAuthStrategy(), base_url=hub.emu.api_url)
    response = unauthenticated.rest.apps.create_from_manifest(code)
    created = response.parsed_data
    assert created is not None
    assert (created.name, created.slug) == ("Qwen Fix", "qwen-fix")
    assert created.webhook_secret and created.client_secret and created.client_id
    assert (created.client_id, created.client_secret) == hub.emu.app_credentials(created.id)
    assert created.owner is not None
    assert created.html_url.endswith("/apps/qwen-fix")
    assert response.json()["permissions"] == MANIFEST["default_permissions"]
    assert created.events == MANIFEST["default_events"]

    as_app = GitHub(AppAuthStrategy(created.id, created.pem), base_url=hub.emu.api_url)
    authenticated = as_app.rest.apps.get_authenticated().parsed_data
    assert authenticated is not None and authenticated.id == created.id
    app = hub.emu.world.apps[created.id]
    assert (app.webhook_url, app.webhook_secret) == (
        MANIFEST["hook_attributes"]["url"],  # type: ignore[index]
        created.webhook_secret,
    )
    with pytest.raises(RequestFailed) as used:
        unauthenticated.rest.apps.create_from_manifest(code)
    assert used.value.response.status_code == 404, "a code converts once"


def test_the_organization_page_makes_the_organization_the_owner(hub: Hub) -> None:
    code = confirm(hub, "/organizations/octo-org/settings/apps/new", "s-2")
    created = httpx.post(f"{hub.emu.api_url}/app-manifests/{code}/conversions")
    assert created.status_code == 201
    assert created.json()["owner"]["login"] == "octo-org"
    assert created.json()["owner"]["type"] == "Organization"


def test_a_manifest_without_url_is_refused(hub: Hub) -> None:
    broken = httpx.post(
        f"{hub.emu.web_url}/settings/apps/new",
        data={"manifest": json.dumps({"name": "x", "redirect_url": "http://127.0.0.1/"})},
    )
    assert broken.status_code == 422
    assert hub.emu.world.manifest_codes == {}


def test_a_signed_out_browser_is_sent_to_sign_in_first(hub: Hub) -> None:
    hub.emu.sign_out_browser()
    page = httpx.get(f"{hub.emu.web_url}/settings/apps/new")
    assert page.status_code == 302
    assert page.headers["location"] == f"{hub.emu.web_url}/login?return_to=%2Fsettings%2Fapps%2Fnew"
    posted = httpx.post(
        f"{hub.emu.web_url}/settings/apps/new", data={"manifest": json.dumps(MANIFEST)}
    )
    assert posted.status_code == 302 and "/login?" in posted.headers["location"]
    assert hub.emu.world.manifest_codes == {}
