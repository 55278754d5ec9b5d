"""Looking for the app's secrets in everything a run left behind, for the security suites.

The secrets are the ones a harness run holds: the app's private key (any line of its body
counts), the webhook secret, the model server's key, and every installation token the emulator
minted. The places are every output path of the app: what the model was sent, trajectories,
the processes' log files, comments, pull requests, check runs, commits and the files of every
branch, and the bodies and headers of every request GitHub received.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import REPO, Harness

MODEL_API_KEY = "model-key-for-the-secret-hunt-3b9f"


@dataclass(frozen=True)
class Leak:
    secret: str
    """Which secret (its name, never its value)."""
    where: str


def secrets_of(h: Harness) -> dict[str, list[str]]:
    """Each secret's name and the strings that would give it away."""
    key_lines = [
        line.strip()
        for line in h.env["PRIVATE_KEY"].splitlines()
        if line.strip() and "-----" not in line
    ]
    found = {
        "private key": key_lines,
        "webhook secret": [h.env["WEBHOOK_SECRET"]],
        "installation token": list(h.emulator.world.tokens),
    }
    if h.env.get("MODEL_API_KEY", "EMPTY") != "EMPTY":
        found["model API key"] = [h.env["MODEL_API_KEY"]]
    return found


def places(h: Harness) -> dict[str, str]:
    """Every output path of the run, as text, by name."""
    texts: dict[str, str] = {}
    texts["model requests"] = json.dumps(h.model.requests)
    for path in sorted((h.root / "data").rglob("*.jsonl")):
        texts[f"trajectory {path.name}"] = path.read_text(errors="replace")
    for path in sorted(h.root.glob("*.log")):
        texts[f"log {path.name}"] = path.read_text(errors="replace")
    texts["comments"] = json.dumps(h.emulator.comments(REPO))
    texts["pull requests"] = json.dumps(h.emulator.pulls(REPO))
    texts["check runs"] = json.dumps(h.emulator.check_runs(REPO))
    repo = h.emulator.world.repo(REPO)
    assert repo is not None
    texts["commits and files of every branch"] = every_ref_content(repo.path)
    for number, record in enumerate(h.emulator.requests):
        texts[f"request {number} {record.method} {record.path}"] = record.body.decode(
            "latin-1"
        ) + json.dumps(record.headers)
    return texts


def every_ref_content(repo: Path) -> str:
    """Commit messages and every blob reachable from any ref (links as their target text)."""
    git = ["git", "-C", str(repo)]
    log = subprocess.run([*git, "log", "--all", "--format=%B"], capture_output=True, text=True)
    objects = subprocess.run(
        [*git, "rev-list", "--all", "--objects"], capture_output=True, text=True, check=True
    )
    shas = [line.split()[0] for line in objects.stdout.splitlines() if line]
    batch = subprocess.run(
        [*git, "cat-file", "--batch"],
        input=("\n".join(shas) + "\n").encode(),
        capture_output=True,
        check=True,
    )
    return log.stdout + batch.stdout.decode("latin-1")


def find_leaks(h: Harness) -> list[Leak]:
    secrets = secrets_of(h)
    assert all(secrets.values()), f"the run minted no token or has no key: {secrets}"
    return [
        Leak(name, where)
        for where, text in places(h).items()
        for name, values in secrets.items()
        if any(value in text for value in values)
    ]
