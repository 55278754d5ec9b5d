"""The OAuth web flow of a GitHub App walked as a browser and the app's server would: authorize,
code, user token, and what that token may read."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.emulator.conftest import Hub
from tests.github_emulator import GitHubEmulator
from tests.github_emulator.state import now

CALLBACK = "http://127.0.0.1:9/login/callback"
"""Never contacted: the test reads the redirect instead of following it."""
VERIFIER = "a-pkce-verifier-of-at-least-forty-three-characters-000"


@dataclass
class Flow:
    """The emulator, the app's OAuth credentials, and a browser that does not follow redirects."""

    emu: GitHubEmulator
    app_id: int
    client_id: str
    client_secret: str
    browser: httpx.Client

    def authorize(self, **params: str) -> httpx.Response:
        query = {"client_id": self.client_id, "redirect_uri": CALLBACK, "state": "s-1", **params}
        return self.browser.get("/login/oauth/authorize", params=query)

    def code(self, **params: str) -> str:
        """The code the browser is sent back to the callback with."""
        answer = self.authorize(**params)
        assert answer.status_code == 302, answer.text
        target = urlsplit(answer.headers["location"])
        sent_to = f"{target.scheme}://{target.netloc}{target.path}"
        assert sent_to == params.get("redirect_uri", CALLBACK)
        query = parse_qs(target.query)
        assert query["state"] == [params.get("state", "s-1")]
        return query["code"][0]

    def exchange(self, **params: str) -> dict[str, Any]:
        """What the app's server gets for a code (or refresh token), asking for JSON."""
        form = {"client_id": self.client_id, "client_secret": self.client_secret, **params}
        answer = self.browser.post(
            "/login/oauth/access_token", data=form, headers={"Accept": "application/json"}
        )
        assert answer.status_code == 200, "GitHub answers token requests with 200, errors too"
        body: dict[str, Any] = answer.json()
        return body

    def token(self) -> str:
        grant = self.exchange(code=self.code(), redirect_uri=CALLBACK)
        token: str = grant["access_token"]
        return token

    def api(self, token: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
        return httpx.get(f"{self.emu.api_url}{path}", headers=headers)


@pytest.fixture
def flow(hub: Hub) -> Iterator[Flow]:
    """alice, signed in, may write octo/hello; octo/secret is private to octo; octo/open is
    public; lone/private, where alice may write, is not where the app is installed."""
    emu = hub.emu
    emu.set_callback_url(hub.app_id, CALLBACK)
    emu.sign_in_browser("alice")
    emu.add_repo("octo", "secret", {"README.md": "s\n"}, hub.installation_id)
    emu.add_repo("octo", "open", {"README.md": "o\n"}, hub.installation_id, private=False)
    emu.set_permission(
        emu.add_repo("lone", "private", {"README.md": "l\n"}, None), "alice", "write"
    )
    client_id, client_secret = emu.app_credentials(hub.app_id)
    with httpx.Client(base_url=emu.web_url) as browser:
        yield Flow(emu, hub.app_id, client_id, client_secret, browser)


def test_the_app_credentials_look_like_githubs(flow: Flow) -> None:
    prefix, _, digits = flow.client_id.partition(".")
    assert prefix == "Iv1" and len(digits) == 16 and int(digits, 16) >= 0
    assert len(flow.client_secret) == 40 and int(flow.client_secret, 16) >= 0


def test_a_signed_in_user_gets_a_token_that_sees_what_both_they_and_the_app_see(
    flow: Flow, hub: Hub
) -> None:
    grant = flow.exchange(code=flow.code(), redirect_uri=CALLBACK)
    assert set(grant) == {
        "access_token", "expires_in", "refresh_token", "refresh_token_expires_in", "scope",
        "token_type",
    }  # fmt: skip
    assert grant["access_token"].startswith("ghu_") and len(grant["access_token"]) == 40
    assert grant["refresh_token"].startswith("ghr_")
    assert (grant["expires_in"], grant["refresh_token_expires_in"]) == (28800, 15897600)
    assert (grant["token_type"], grant["scope"]) == ("bearer", "")
    token = grant["access_token"]

    me = flow.api(token, "/user")
    assert me.status_code == 200
    assert (me.json()["login"], me.json()["user_view_type"]) == ("alice", "private")

    hello = flow.api(token, "/repos/octo/hello")
    assert hello.status_code == 200
    assert hello.json()["permissions"] == {
        "admin": False, "maintain": False, "push": True, "triage": True, "pull": True,
    }  # fmt: skip
    public = flow.api(token, "/repos/octo/open")
    assert public.status_code == 200 and public.json()["permissions"]["push"] is False
    assert flow.api(token, "/repos/octo/secret").status_code == 404, "alice may not read it"
    assert flow.api(token, "/repos/lone/private").status_code == 404, "the app is not there"
    assert flow.api(token, "/repos/octo/nothing").status_code == 404

    installations = flow.api(token, "/user/installations").json()
    assert [i["id"] for i in installations["installations"]] == [hub.installation_id]
    assert installations["total_count"] == 1
    listed = flow.api(token, f"/user/installations/{hub.installation_id}/repositories").json()
    assert [r["full_name"] for r in listed["repositories"]] == ["octo/hello"]
    assert listed["repositories"][0]["permissions"]["push"] is True
    assert {r.auth for r in flow.emu.requests if r.path.startswith("/api/v3/")} == {"user"}


def test_the_owner_reaches_every_repository_of_an_installation_on_their_account(
    flow: Flow, hub: Hub
) -> None:
    token = flow.emu.user_token(flow.app_id, "octo")
    listed = flow.api(token, f"/user/installations/{hub.installation_id}/repositories?per_page=2")
    assert listed.json()["total_count"] == 3
    assert len(listed.json()["repositories"]) == 2 and 'rel="next"' in listed.headers["link"]
    secret = flow.api(token, "/repos/octo/secret")
    assert secret.status_code == 200 and secret.json()["permissions"]["admin"] is True


def test_a_user_without_any_access_sees_no_installation(flow: Flow, hub: Hub) -> None:
    token = flow.emu.user_token(flow.app_id, "mallory")
    assert flow.api(token, "/user/installations").json() == {"total_count": 0, "installations": []}
    repos = flow.api(token, f"/user/installations/{hub.installation_id}/repositories")
    assert repos.status_code == 404


def test_a_code_buys_one_token_and_only_for_ten_minutes(flow: Flow) -> None:
    code = flow.code()
    assert flow.exchange(code=code)["access_token"].startswith("ghu_")
    again = flow.exchange(code=code)
    assert again == {
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
        "troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    }
    late = flow.code()
    flow.emu.world.oauth_codes[late].expires_at = now() - timedelta(seconds=1)
    assert flow.exchange(code=late)["error"] == "bad_verification_code"
    assert flow.exchange(code="0" * 20)["error"] == "bad_verification_code"


def test_wrong_client_credentials_are_refused_without_spending_the_code(flow: Flow) -> None:
    code = flow.code()
    wrong = flow.exchange(code=code, client_secret="0" * 40)
    assert wrong["error"] == "incorrect_client_credentials"
    assert wrong["error_description"] == "The client_id and/or client_secret passed are incorrect."
    unknown = flow.exchange(code=code, client_id="Iv1.0000000000000000")
    assert unknown["error"] == "incorrect_client_credentials"
    assert "access_token" in flow.exchange(code=code)


def test_another_apps_code_is_a_bad_code(flow: Flow, hub: Hub) -> None:
    flow.emu.add_app(hub.app_id + 1000)
    other_id, other_secret = flow.emu.app_credentials(hub.app_id + 1000)
    refused = flow.exchange(code=flow.code(), client_id=other_id, client_secret=other_secret)
    assert refused["error"] == "bad_verification_code"


def test_the_token_request_must_name_the_redirect_uri_the_code_went_to(flow: Flow) -> None:
    refused = flow.exchange(code=flow.code(), redirect_uri="http://127.0.0.1:9/elsewhere")
    assert refused["error"] == "redirect_uri_mismatch"
    assert refused["error_description"] == (
        "The redirect_uri MUST match the registered callback URL for this application."
    )


def test_a_redirect_uri_that_is_not_a_callback_url_gets_an_error_page_not_a_redirect(
    flow: Flow,
) -> None:
    for elsewhere in (
        "https://evil.example/login/callback",
        CALLBACK + "/deeper",
        CALLBACK + "?x=1",
    ):
        page = flow.authorize(redirect_uri=elsewhere)
        assert page.status_code == 200 and "location" not in page.headers
        assert "The redirect_uri is not associated with this application" in page.text
    assert flow.emu.world.oauth_codes == {}


def test_a_wildcard_callback_url_also_allows_its_subdirectories(flow: Flow) -> None:
    flow.emu.set_callback_url(flow.app_id, CALLBACK, wildcard=True)
    assert flow.code(redirect_uri=CALLBACK + "/deeper")
    refused = flow.authorize(redirect_uri="http://127.0.0.1:10/login/callback")
    assert refused.status_code == 200 and "not associated" in refused.text


def test_without_redirect_uri_the_first_callback_url_is_used(flow: Flow) -> None:
    answer = flow.browser.get(
        "/login/oauth/authorize", params={"client_id": flow.client_id, "state": "s-1"}
    )
    assert answer.status_code == 302 and answer.headers["location"].startswith(CALLBACK + "?")


def test_an_unknown_client_id_is_a_404_page(flow: Flow) -> None:
    page = flow.authorize(client_id="Iv1.0000000000000000")
    assert page.status_code == 404 and "location" not in page.headers


def test_a_signed_out_browser_signs_in_first_and_comes_back(flow: Flow) -> None:
    flow.emu.sign_out_browser()
    sent = flow.authorize(allow_signup="false")
    assert sent.status_code == 302
    login = urlsplit(sent.headers["location"])
    assert (login.netloc, login.path) == (urlsplit(flow.emu.web_url).netloc, "/login")
    return_to = parse_qs(login.query)["return_to"][0]
    assert return_to.startswith("/login/oauth/authorize?client_id=")
    assert parse_qs(login.query)["client_id"] == [flow.client_id]
    assert flow.emu.world.oauth_codes == {}

    form = flow.browser.get(sent.headers["location"])
    assert form.status_code == 200 and 'action="/session"' in form.text
    signed_in = flow.browser.post("/session", data={"login": "alice", "return_to": return_to})
    assert signed_in.headers["location"] == flow.emu.web_url + return_to
    back = flow.browser.get(signed_in.headers["location"])
    assert back.status_code == 302 and back.headers["location"].startswith(CALLBACK + "?code=")


def test_a_login_hint_for_someone_else_asks_to_sign_in_as_them(flow: Flow) -> None:
    sent = flow.authorize(login="bob")
    assert sent.status_code == 302
    assert parse_qs(urlsplit(sent.headers["location"]).query)["login"] == ["bob"]
    assert flow.code(login="alice")


def test_the_answer_is_form_encoded_unless_json_is_accepted(flow: Flow) -> None:
    form = {"client_id": flow.client_id, "client_secret": flow.client_secret}
    granted = flow.browser.post("/login/oauth/access_token", data={**form, "code": flow.code()})
    assert granted.status_code == 200
    assert granted.headers["content-type"].startswith("application/x-www-form-urlencoded")
    fields = parse_qs(granted.text, keep_blank_values=True)
    assert fields["access_token"][0].startswith("ghu_")
    assert (fields["token_type"], fields["scope"]) == (["bearer"], [""])
    refused = flow.browser.post("/login/oauth/access_token", data={**form, "code": "nope"})
    assert refused.status_code == 200
    assert parse_qs(refused.text)["error"] == ["bad_verification_code"]


def test_a_json_token_request_is_understood(flow: Flow) -> None:
    body = {"client_id": flow.client_id, "client_secret": flow.client_secret, "code": flow.code()}
    granted = flow.browser.post(
        "/login/oauth/access_token", json=body, headers={"Accept": "application/json"}
    )
    assert granted.json()["access_token"].startswith("ghu_")


def test_an_expired_or_unknown_user_token_is_bad_credentials(flow: Flow) -> None:
    token = flow.token()
    flow.emu.expire_user_token(token)
    for path in ("/user", "/repos/octo/hello", "/user/installations"):
        answer = flow.api(token, path)
        assert (answer.status_code, answer.json()["message"]) == (401, "Bad credentials")
    assert flow.api("ghu_" + "0" * 36, "/user").status_code == 401


def test_a_refresh_replaces_both_tokens(flow: Flow) -> None:
    first = flow.exchange(code=flow.code())
    second = flow.exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert flow.api(second["access_token"], "/user").status_code == 200
    assert flow.api(first["access_token"], "/user").status_code == 401
    again = flow.exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again["error"] == "bad_refresh_token"
    wrong = flow.exchange(
        grant_type="refresh_token", refresh_token=second["refresh_token"], client_secret="x"
    )
    assert wrong["error"] == "incorrect_client_credentials"


def test_pkce_needs_the_verifier_of_the_challenge(flow: Flow) -> None:
    digest = hashlib.sha256(VERIFIER.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert flow.exchange(code=flow.code(**pkce))["error"] == "bad_verification_code"
    wrong = flow.exchange(code=flow.code(**pkce), code_verifier=VERIFIER + "x")
    assert wrong["error"] == "bad_verification_code"
    assert "access_token" in flow.exchange(code=flow.code(**pkce), code_verifier=VERIFIER)

    plain = flow.authorize(code_challenge=VERIFIER, code_challenge_method="plain")
    query = parse_qs(urlsplit(plain.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "code" not in query


def test_a_user_token_does_not_act_as_the_installation_or_the_app(flow: Flow, hub: Hub) -> None:
    token = flow.token()
    comment = httpx.post(
        f"{flow.emu.api_url}/repos/octo/hello/issues/1/comments",
        headers={"Authorization": f"Bearer {token}"},
        json={"body": "hi"},
    )
    assert comment.status_code == 401
    minted = httpx.post(
        f"{flow.emu.api_url}/app/installations/{hub.installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert minted.status_code == 401
    installation = flow.emu.installation_token(hub.installation_id)
    me = flow.api(installation, "/user")
    assert (me.status_code, me.json()["message"]) == (403, "Resource not accessible by integration")


def test_the_manifest_conversion_hands_over_the_credentials_and_callback_urls(flow: Flow) -> None:
    manifest = {"name": "Viewer", "url": "http://127.0.0.1:3000", "callback_urls": [CALLBACK]}
    code = flow.emu.manifest_code(manifest)
    created = httpx.post(f"{flow.emu.api_url}/app-manifests/{code}/conversions").json()
    assert flow.emu.app_credentials(created["id"]) == (
        created["client_id"],
        created["client_secret"],
    )
    converted = Flow(
        flow.emu, created["id"], created["client_id"], created["client_secret"], flow.browser
    )
    assert converted.exchange(code=converted.code())["access_token"].startswith("ghu_")
