"""A real run, end to end, as the run viewer shows it: the worker publishes every step to Redis,
the receiver's process serves the page, and GitHub links to it."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ADMIN = "e2e-admin-token"


def test_a_run_is_published_step_by_step_and_linked_from_github(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(fix_add_script(), start=False)
    public = f"http://127.0.0.1:{h.web_port}"
    h.env.update({"PUBLIC_URL": public, "ADMIN_TOKEN": ADMIN})
    h.start()
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    h.label(issue)
    tracking = h.tracking_says(issue, "Opened #")
    link = re.search(rf"\[what it did\]\(({re.escape(public)}/runs/([0-9a-f]{{32}}))\)", tracking)
    assert link is not None, tracking
    (pull,) = h.emulator.pulls(REPO)
    assert f"[every step of the run]({link.group(1)})" in pull["body"]

    headers = {"Authorization": f"Bearer {ADMIN}"}
    page = h.wait_for(
        "the run's page to say how it ended",
        lambda: (
            answer
            if "Opened #" in (answer := httpx.get(link.group(1), headers=headers)).text
            else None
        ),
        timeout=30,
    )
    text = page.text
    assert "Step 1" in text and "Step 5" in text
    assert "str_replace <code>calc.py</code>" in text
    assert '<span class="add">+    return a + b</span>' in text
    assert "☑ Fix add in calc.py" in text  # the plan
    assert "Tests passed" in text and "1 passed" in text
    assert 'data-state="done"' in text
    listing = httpx.get(f"{public}/runs", headers=headers)
    assert link.group(2) in listing.text and "label by @maintainer" in listing.text
    assert f'/{REPO}/pull/{pull["number"]}">PR</a>' in listing.text
    # Nobody else: the page needs a sign-in.
    assert httpx.get(link.group(1)).status_code == 401

    # The trajectory on the worker's disk rebuilds the same timeline, by `qwen-fix run-page`.
    (trajectory,) = (h.root / "data" / "trajectories").glob("solve_issue*.jsonl")
    out = h.root / "page.html"
    subprocess.run(
        [sys.executable, "-m", "workers.cli", "run-page", str(trajectory), "-o", str(out)],
        check=True, env=h.env, cwd=h.root,
    )  # fmt: skip
    served = re.findall(r'<li class="event ([a-z_]+)"', text)
    rebuilt = re.findall(r'<li class="event ([a-z_]+)"', out.read_text())
    assert served == rebuilt and served[0] == "start" and served[-1] == "outcome"
    assert "☑ Fix add in calc.py" in out.read_text()
