"""The run viewer over a real Redis and the GitHub emulator, in-process: who may see what, the
pages as rendered from runs that workers/run_log.py published, the live stream, bad input."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bot.control import WorkRegistry
from bot.deliveries import DeliveryLog
from bot.github import GitHubApp
from bot.receiver import Receiver, create_app
from bot.routing import Rules
from bot.run_pages import RunViewer
from bot.runs import RunHeader, RunStore, new_run_id
from bot.web_auth import SESSION_COOKIE, GitHubOAuth, WebAuth
from tests.github_emulator.emulator import GitHubEmulator
from workers.run_log import RunLog, RunLogs

APP_ID = 4711
ADMIN = "break-glass-token"
SECRET = "webhook-secret"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
BROWSER = {"Accept": "text/html,application/xhtml+xml"}
ORIGIN = "http://viewer"


@dataclass
class World:
    emulator: GitHubEmulator
    redis: ArqRedis
    client: httpx.AsyncClient
    auth: WebAuth
    runs: RunLogs

    async def run(
        self, repository: str = "octo-org/calc", *, state: str = "done", started: float = 0.0
    ) -> RunLog:
        header = RunHeader(
            id=new_run_id(), job_id="solve_issue:d-1", kind="issue", repository=repository,
            number=1, trigger="label", requested_by="maintainer", headline="Working on a fix",
            started=started or time.time(),
        )  # fmt: skip
        run = await self.runs.start(header)
        if state != "running":
            await run.update(state=state, ended=time.time())
        return run


@pytest.fixture
def emulator(tmp_path: Any) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
async def world(emulator: GitHubEmulator, redis_url: str) -> AsyncIterator[World]:
    key = emulator.add_app(APP_ID, slug="qwen-fix")
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "calc", {"README.md": "calc\n"}, installation)
    emulator.add_repo("octo-org", "vault", {"README.md": "secret\n"}, installation)
    emulator.set_permission("octo-org/calc", "maintainer", "write")
    emulator.set_permission("octo-org/calc", "reader", "read")
    emulator.set_permission("octo-org/vault", "maintainer", "admin")
    emulator.set_callback_url(APP_ID, f"{ORIGIN}/login/callback")
    client_id, client_secret = emulator.app_credentials(APP_ID)
    oauth = GitHubOAuth(client_id, client_secret, emulator.web_url, emulator.api_url)
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    await redis.flushall()
    receiver = Receiver(
        webhook_secret=SECRET.encode(),
        rules=Rules(),
        github=GitHubApp(APP_ID, key, emulator.api_url),
        queue=redis,
        deliveries=DeliveryLog(redis),
        registry=WorkRegistry(redis),
    )
    auth = WebAuth(redis, key=SECRET.encode(), admin_token=ADMIN, oauth=oauth, public_url=None)
    app = create_app(receiver=receiver, run_viewer=RunViewer(RunStore(redis), auth))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield World(emulator, redis, client, auth, RunLogs(redis, 14 * 86400))
    await redis.aclose()


STEP: dict[str, Any] = {
    "type": "step",
    "step": 1,
    "messages": [
        {
            "role": "assistant",
            "content": "I'll fix it. <script>alert('x')</script>\n<tool_call>\n<function=bash>",
            "reasoning": "The sign is wrong in add().",
        }
    ],
    "tool_calls": [
        {"name": "bash", "arguments": {"command": "grep -n 'a - b' calc.py"}},
        {
            "name": "str_replace_editor",
            "arguments": {
                "command": "str_replace",
                "path": "calc.py",
                "old_str": "    return a - b\n",
                "new_str": "    return a + b\n",
            },
        },
    ],
    "observations": ["2:    return a - b", "The file calc.py has been edited."],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 80},
    "model_seconds": 1.5,
    "tool_seconds": 0.2,
}


async def published(world: World, *events: dict[str, Any], state: str = "done") -> RunLog:
    run = await world.run(state="running")
    for event in events:
        run.emit({"time": time.time(), **event})
    if state == "running":
        await asyncio.sleep(0.2)
        return run
    await run.update(state=state, ended=time.time(), headline="Opened #2")
    await run.close()
    return run


# --- who may see what ------------------------------------------------------------------------


async def test_an_anonymous_browser_is_sent_to_sign_in_and_a_machine_gets_401(
    world: World,
) -> None:
    run = await published(world, STEP)
    page = await world.client.get(f"/runs/{run.id}", headers=BROWSER)
    assert page.status_code == 303
    assert page.headers["location"] == f"/login?next=%2Fruns%2F{run.id}"
    sign_in = await world.client.get(page.headers["location"], headers=BROWSER)
    assert sign_in.status_code == 200 and "Operator token" in sign_in.text
    assert "Sign in with GitHub" in sign_in.text
    for path in ("/runs", f"/runs/{run.id}", f"/runs/{run.id}/events"):
        machine = await world.client.get(path)
        assert machine.status_code == 401, path
        assert "grep -n" not in machine.text
    wrong = await world.client.get("/runs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_the_operator_token_sees_every_run_newest_first_with_filters(world: World) -> None:
    now = time.time()
    old = await world.run("octo-org/calc", started=now - 100)
    new = await world.run("octo-org/other", state="failed", started=now - 10)
    page = await world.client.get("/runs", headers=ADMIN_HEADERS)
    assert page.status_code == 200
    assert page.text.index(new.id) < page.text.index(old.id)
    only = await world.client.get("/runs?repo=octo-org/calc", headers=ADMIN_HEADERS)
    assert old.id in only.text and new.id not in only.text
    failed = await world.client.get("/runs?state=failed", headers=ADMIN_HEADERS)
    assert new.id in failed.text and old.id not in failed.text


async def test_runs_are_paginated_with_a_link_to_older_ones(world: World) -> None:
    now = time.time()
    made = [await world.run(started=now - 100 + i) for i in range(30)]
    first = await world.client.get("/runs", headers=ADMIN_HEADERS)
    shown = [run.id for run in made if run.id in first.text]
    assert shown == [run.id for run in made[-25:]]
    older = re.search(r'href="(/runs\?before=[^"]+)"', first.text)
    assert older is not None
    second = await world.client.get(older.group(1).replace("&amp;", "&"), headers=ADMIN_HEADERS)
    assert [run.id for run in made if run.id in second.text] == [run.id for run in made[:5]]


async def test_the_token_form_signs_in_and_out_and_refuses_other_sites(world: World) -> None:
    form = {"token": ADMIN, "next": "/runs"}
    cross = await world.client.post(
        "/login/token", data=form, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    wrong = await world.client.post(
        "/login/token", data={**form, "token": "guess"}, headers={"Origin": ORIGIN}
    )
    assert wrong.status_code == 401 and "not the operator's token" in wrong.text
    signed = await world.client.post("/login/token", data=form, headers={"Origin": ORIGIN})
    assert signed.status_code == 303 and signed.headers["location"] == "/runs"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert (await world.client.get("/runs", headers=BROWSER)).status_code == 200
    out = await world.client.post("/logout", headers={"Origin": ORIGIN})
    assert out.status_code == 303
    session = cookie.split(";")[0].split("=", 1)[1]
    world.client.cookies.set(SESSION_COOKIE, session)  # a stolen copy is worth nothing now
    assert (await world.client.get("/runs", headers=BROWSER)).status_code == 303


async def test_a_next_path_never_leads_off_the_site(world: World) -> None:
    for target in ("https://evil.example/runs", "//evil.example", "/runs\\@evil", "/admin"):
        signed = await world.client.post(
            "/login/token", data={"token": ADMIN, "next": target}, headers={"Origin": ORIGIN}
        )
        assert signed.headers["location"] == "/runs", target


@pytest.mark.parametrize(
    "cookie",
    ["made-up", "x" * 2000, "abc.def", "Zm9v.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
)
async def test_a_forged_cookie_is_401_and_cleared(world: World, cookie: str) -> None:
    world.client.cookies.set(SESSION_COOKIE, cookie)
    answer = await world.client.get("/runs", headers=BROWSER)
    assert answer.status_code == 401
    assert f"{SESSION_COOKIE}=" in answer.headers.get("set-cookie", "")


async def test_a_signed_cookie_of_a_session_that_ended_is_anonymous(world: World) -> None:
    world.client.cookies.set(SESSION_COOKIE, world.auth.sign("no-such-session"))
    assert (await world.client.get("/runs", headers=BROWSER)).status_code == 303


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/runs/" + "0" * 32, 404),
        ("/runs/../../etc/passwd", 404),
        ("/runs/..%2F..%2Fdata%2Ftrajectories", 404),
        ("/runs/" + "A" * 32, 404),
        ("/runs?state=everything", 400),
        ("/runs?repo=../../x", 400),
        ("/runs?before=yesterday", 400),
        ("/runs?repo=" + "a" * 5000, 414),
        ("/runs/" + "0" * 32 + "/events?after=$", 404),
    ],
)
async def test_bad_input_is_a_4xx_never_a_500(world: World, path: str, status: int) -> None:
    answer = await world.client.get(path, headers=ADMIN_HEADERS)
    assert answer.status_code == status, answer.text


async def test_a_bad_stream_position_is_400(world: World) -> None:
    run = await published(world, STEP)
    answer = await world.client.get(f"/runs/{run.id}/events?after=zzz", headers=ADMIN_HEADERS)
    assert answer.status_code == 400


# --- what a run's page shows -------------------------------------------------------------------

PLAN = {"type": "plan", "items": [{"text": "Fix add", "status": "done"},
                                  {"text": "Run the tests", "status": "in_progress"}]}  # fmt: skip
DIFF = (
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
    "-    return a - b\n+    return a + b\n"
)


async def test_a_runs_page_shows_plan_steps_tests_diff_and_why_it_ended(world: World) -> None:
    run = await published(
        world,
        PLAN,
        STEP,
        {"type": "diff", "patch": DIFF},
        {
            "type": "verification",
            "command": "python3 -m pytest -q",
            "passed": True,
            "log": "..\n2 passed in 0.01s\n",
        },
        {"type": "outcome", "state": "done", "headline": "Opened #2", "detail": "the tests pass"},
    )
    page = await world.client.get(f"/runs/{run.id}", headers=ADMIN_HEADERS)
    assert page.status_code == 200
    text = page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "☑ Fix add" in text and "▶ Run the tests" in text
    assert "$ grep -n &#x27;a - b&#x27; calc.py" in text
    assert '<span class="del">-    return a - b</span>' in text
    assert '<span class="add">+    return a + b</span>' in text
    assert "<details><summary>Reasoning" in text  # folded
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<script>alert" not in text and "&lt;tool_call&gt;" not in text
    assert "Tests passed" in text and "2 passed" in text
    assert "Opened #2" in text and 'data-live="no"' in text


async def test_secrets_are_masked_before_they_reach_the_stream(world: World) -> None:
    run = await world.run(state="running")
    token = "ghs_" + "a1B2" * 9
    await run.event("verification", command="pytest", passed=False, log=f"token={token}\n")
    await run.close()
    events = await RunStore(world.redis).events(run.id)
    assert token not in json.dumps(events)


async def test_new_events_arrive_on_the_stream_while_the_run_goes_on(world: World) -> None:
    run = await published(world, PLAN, state="running")
    page = await world.client.get(f"/runs/{run.id}", headers=ADMIN_HEADERS)
    after = re.search(r'data-after="([^"]+)"', page.text)
    assert after is not None and 'data-live="yes"' in page.text

    async def go_on() -> None:
        await asyncio.sleep(0.5)
        run.emit({"type": "step", "time": time.time(), **{k: v for k, v in STEP.items()
                                                           if k != "type"}})  # fmt: skip
        await run.update(steps=1)
        await asyncio.sleep(0.5)
        await run.update(state="done", ended=time.time(), headline="Opened #2")
        await run.close()

    later = asyncio.create_task(go_on())
    stream = await world.client.get(
        f"/runs/{run.id}/events?after={after.group(1)}", headers=ADMIN_HEADERS, timeout=30
    )
    await later
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [block for block in stream.text.split("\n\n") if block.startswith("event:")]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert names[0] == "event" and names[-1] == "end" and "header" in names
    first = json.loads(events[0].split("data: ", 1)[1])
    assert "grep -n" in first["html"] and "Step 1" in first["html"]
    assert "Fix add" not in stream.text  # what the page already had is not sent again


# --- signing in with GitHub --------------------------------------------------------------------


async def sign_in_with_github(world: World, login: str, next_path: str = "/runs") -> httpx.Response:
    """The browser's round trip: our /login/github → GitHub's authorize page (signed in there
    as `login`) → back to our callback with a code → a session."""
    world.emulator.sign_in_browser(login)
    start = await world.client.get(f"/login/github?next={next_path}", headers=BROWSER)
    assert start.status_code == 303, start.text
    assert start.headers["location"].startswith(f"{world.emulator.web_url}/login/oauth/authorize")
    async with httpx.AsyncClient() as browser:
        at_github = await browser.get(start.headers["location"])
    assert at_github.status_code == 302, at_github.text
    back = httpx.URL(at_github.headers["location"])
    assert str(back).startswith(f"{ORIGIN}/login/callback?")
    return await world.client.get(f"{back.path}?{back.query.decode()}", headers=BROWSER)


async def test_a_person_signs_in_with_github_and_sees_runs_of_repositories_they_can_read(
    world: World,
) -> None:
    calc = await world.run("octo-org/calc")
    vault = await world.run("octo-org/vault")
    signed = await sign_in_with_github(world, "reader", f"/runs/{calc.id}")
    assert signed.status_code == 303 and signed.headers["location"] == f"/runs/{calc.id}"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "ghu_" not in cookie  # the user's token stays server-side
    page = await world.client.get(f"/runs/{calc.id}", headers=BROWSER)
    assert page.status_code == 200
    listing = await world.client.get("/runs", headers=BROWSER)
    assert calc.id in listing.text and vault.id not in listing.text
    hidden = await world.client.get(f"/runs/{vault.id}", headers=BROWSER)
    assert hidden.status_code == 404 and "vault" not in hidden.text
    stream = await world.client.get(f"/runs/{vault.id}/events", headers=BROWSER)
    assert stream.status_code == 404


async def test_a_person_without_access_sees_nothing_of_a_run(world: World) -> None:
    calc = await world.run("octo-org/calc")
    await sign_in_with_github(world, "stranger")
    assert calc.id not in (await world.client.get("/runs", headers=BROWSER)).text
    assert (await world.client.get(f"/runs/{calc.id}", headers=BROWSER)).status_code == 404


async def test_a_sign_in_whose_state_does_not_match_is_refused(world: World) -> None:
    world.emulator.sign_in_browser("reader")
    start = await world.client.get("/login/github", headers=BROWSER)
    async with httpx.AsyncClient() as browser:
        at_github = await browser.get(start.headers["location"])
    back = httpx.URL(at_github.headers["location"])
    forged = back.copy_set_param("state", "attacker-chosen")
    answer = await world.client.get(f"{forged.path}?{forged.query.decode()}", headers=BROWSER)
    assert answer.status_code == 400 and "state does not match" in answer.text
    # Without the state cookie (another browser), the genuine link does not work either.
    world.client.cookies.clear()
    answer = await world.client.get(f"{back.path}?{back.query.decode()}", headers=BROWSER)
    assert answer.status_code == 400
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_a_code_github_refuses_gives_a_clear_page_and_no_session(world: World) -> None:
    world.emulator.sign_in_browser("reader")
    start = await world.client.get("/login/github", headers=BROWSER)
    state = httpx.URL(start.headers["location"]).params["state"]
    answer = await world.client.get(f"/login/callback?code=made-up&state={state}", headers=BROWSER)
    assert answer.status_code == 400
    assert "GitHub did not grant a token" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_access_is_asked_of_github_again_after_a_minute(world: World) -> None:
    calc = await world.run("octo-org/calc")
    await sign_in_with_github(world, "reader")
    assert (await world.client.get(f"/runs/{calc.id}", headers=BROWSER)).status_code == 200
    world.emulator.set_permission("octo-org/calc", "reader", "none")
    # Cached for ACCESS_TTL: still allowed; once that passes, GitHub's new answer counts.
    assert (await world.client.get(f"/runs/{calc.id}", headers=BROWSER)).status_code == 200
    world.auth._access.clear()  # the minute passes
    assert (await world.client.get(f"/runs/{calc.id}", headers=BROWSER)).status_code == 404
