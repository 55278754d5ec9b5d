"""The run viewer in a real browser: Debian's Chromium, driven by Playwright, against the whole
app on loopback while a run goes on. Screenshots land in tests/web/screenshots/ (ignored)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import APP_ID, REPO, Harness, fix_add_script
from tests.model_server.script import Reply, Turn

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ADMIN = "browser-admin-token"
SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SLOW_TURN = 2
"""The script's turn (the to-do update) answered late, so the page is open before it comes."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed; run `bash scripts/bootstrap`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def slowed(turns: list[Turn], index: int, seconds: float) -> list[Turn]:
    return [Reply(str(t), delay=seconds) if n == index else t for n, t in enumerate(turns)]


def run_link(h: Harness, issue: int) -> str:
    found = h.wait_for(
        "the tracking comment's link to the run",
        lambda: re.search(r"\((http://[^)]+/runs/[0-9a-f]{32})\)", h.tracking(issue) or ""),
    )
    return found.group(1)


def sign_in_with_the_token(page: Page, url: str) -> None:
    """An anonymous visitor is sent to sign in; the operator's token lets them in."""
    page.goto(url)
    assert "/login?next=" in page.url
    page.get_by_label("Operator token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url)


def test_the_run_page_follows_a_run_live_in_chromium(
    make_harness: MakeHarness, browser: Browser
) -> None:
    h = make_harness(slowed(fix_add_script(), SLOW_TURN, 8.0), start=False)
    public = f"http://127.0.0.1:{h.web_port}"
    client_id, client_secret = h.emulator.app_credentials(APP_ID)
    h.emulator.set_callback_url(APP_ID, f"{public}/login/callback")
    h.env.update({
        "PUBLIC_URL": public, "ADMIN_TOKEN": ADMIN,
        "GITHUB_CLIENT_ID": client_id, "GITHUB_CLIENT_SECRET": client_secret,
    })  # fmt: skip
    h.start()
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    h.label(issue)
    url = run_link(h, issue)

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in_with_the_token(page, url)
    page.wait_for_selector("#plan li")  # the plan, from the first step
    assert "Fix add in calc.py" in page.inner_text("#plan")
    steps_before = page.locator("li.event.step").count()
    assert steps_before < SLOW_TURN + 1, "the slow turn came before the page was open"
    page.evaluate("window.stayed = true")  # gone if the page reloads

    # A new step appears without a reload while the run goes on, then the end.
    # (A locator, not wait_for_function: the page's CSP forbids the eval that one needs.)
    page.locator("li.event.step").nth(steps_before).wait_for(timeout=60_000)
    page.wait_for_selector("li.event.outcome", timeout=60_000)
    assert page.evaluate("window.stayed") is True
    assert "Opened #" in page.inner_text("li.event.outcome")
    assert page.locator("pre.diff span.add", has_text="return a + b").count() >= 1
    page.wait_for_selector('#header[data-state="done"]', timeout=30_000)
    assert "1 passed" in page.inner_text("li.event.verification")

    # The search box keeps the steps that match.
    page.fill("#search", "run_tests")
    visible = page.locator("li.event.step:visible")
    assert 1 <= visible.count() < page.locator("li.event.step").count()
    page.fill("#search", "")

    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "run-desktop.png"), full_page=True)
    page.goto(f"{public}/runs")
    assert issue and f"{REPO} issue #{issue}" in page.inner_text("table.runs")
    page.screenshot(path=str(SHOTS / "runs-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / "runs-phone.png"), full_page=True)
    page.goto(url)
    # On a phone the page fits the width: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(SHOTS / "run-phone.png"), full_page=True)
    context.close()

    # Someone who signs in with GitHub but cannot read the repository sees nothing of it.
    h.emulator.sign_in_browser("stranger")
    stranger = browser.new_context(viewport=PHONE).new_page()
    stranger.goto(url)
    assert "/login" in stranger.url
    stranger.get_by_role("link", name="Sign in with GitHub").click()
    stranger.wait_for_url(url)  # GitHub sent them back where they were going
    assert "no such run" in stranger.content() and "grep" not in stranger.content()
    stranger.goto(f"{public}/runs")
    assert "No runs to show" in stranger.inner_text("table.runs")
    stranger.context.close()

    # A maintainer of the repository who signs in with GitHub sees it.
    h.emulator.sign_in_browser("maintainer")
    maintainer = browser.new_context(viewport=DESKTOP).new_page()
    maintainer.goto(url)
    maintainer.get_by_role("link", name="Sign in with GitHub").click()
    maintainer.wait_for_url(url)
    assert "Opened #" in maintainer.inner_text("#header")
    maintainer.context.close()
