"""The tracking comment: one comment per issue or pull request, edited in place as a job runs.

It shows the state, the agent's live to-do list, elapsed time and tokens, and at the end the
pull request link or the exact reason for failure with the command to retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog
from githubkit import GitHub
from githubkit.rest.paginator import Paginator
from githubkit_schemas.latest.models import IssueComment

from bot.control import WorkRegistry
from bot.runs import State as RunState
from workers.agent.tools.context import TodoItem
from workers.agent.trajectory import StepRecord
from workers.pr_body import clamp
from workers.run_log import RunLog

log = structlog.get_logger("qwen_fix.tracking")

MARKER = "<!-- qwen-fix:tracking -->"
EDIT_INTERVAL = 10.0
"""Least seconds between two edits: GitHub limits content writes, and nobody reads faster."""
FINISH_PATIENCE = 600.0
"""Seconds a job keeps trying to write its last word on GitHub while GitHub fails."""

State = Literal[
    "queued", "starting", "working", "testing", "publishing", "done", "failed", "stopped"
]
ICONS = {
    "queued": "⏳",
    "starting": "⏳",
    "working": "🛠️",
    "testing": "🧪",
    "publishing": "📤",
    "done": "✅",
    "failed": "❌",
    "stopped": "⏹️",
}
MARKS = {"pending": "[ ]", "in_progress": "[ ]", "done": "[x]"}
RUN_STATES: dict[State, RunState] = {
    "queued": "queued",
    "starting": "running",
    "working": "running",
    "testing": "running",
    "publishing": "running",
    "done": "done",
    "failed": "failed",
    "stopped": "stopped",
}
"""The run viewer's state of each state of the comment."""


@dataclass(frozen=True, slots=True)
class Held:
    """A job waiting for a model slot before its agent starts (workers/admission.py)."""

    ahead: int
    """Waiting jobs the fair order admits before this one."""
    busy: bool = False
    """The model server reports itself saturated, so nobody is admitted until it has room."""


@dataclass
class Progress:
    """What the tracking comment shows; the pure renderer below turns it into Markdown."""

    headline: str
    state: State = "starting"
    started: float = field(default_factory=time.time)
    plan: list[TodoItem] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    detail: str = ""
    """Closing text: the pull request, the plan, the answer or the reason and how to retry."""
    held: Held | None = None
    environment: list[str] = field(default_factory=list)
    """What the sandbox runs, one line each: its image and test command, with why."""
    run_url: str | None = None
    """The run's page in the run viewer (PUBLIC_URL set)."""


def render_tracking(progress: Progress, now: float) -> str:
    lines = [MARKER, f"{ICONS[progress.state]} **{progress.headline}**", ""]
    if progress.environment:
        lines += [*progress.environment, ""]
    if progress.held is not None and progress.state == "queued":
        lines += [held_line(progress.held), ""]
    if progress.plan:
        lines += [_plan_line(item) for item in progress.plan] + [""]
    run_link = f" · [what it did]({progress.run_url})" if progress.run_url else ""
    lines.append(
        f"<sub>{_elapsed(now - progress.started)} · {progress.steps} steps · "
        f"{progress.tokens:,} tokens{run_link}</sub>"
    )
    if progress.detail:
        lines += ["", progress.detail]
    return clamp("\n".join(lines))


def held_line(held: Held) -> str:
    place = f"{held.ahead} ahead" if held.ahead else "next in line"
    line = f"Waiting for a free model slot, {place}."
    if held.busy:
        line += " The model server is busy, so no new run starts until it has room."
    return line


def _plan_line(item: TodoItem) -> str:
    text = f"**{item.text}** ← now" if item.status == "in_progress" else item.text
    return f"- {MARKS[item.status]} {text}"


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(max(int(seconds), 0), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class TrackingComment:
    """The comment's actor: finds or creates it, and edits it at most every EDIT_INTERVAL.

    It is also the agent's observer, so the to-do list on GitHub follows the agent's plan.
    """

    def __init__(
        self,
        client: GitHub,
        repository: str,
        number: int,
        progress: Progress,
        *,
        bot_login: str,
        registry: WorkRegistry | None = None,
        interval: float = EDIT_INTERVAL,
        run: RunLog | None = None,
    ) -> None:
        self._client = client
        self._owner, self._name = repository.split("/", 1)
        self._key = f"{repository}#{number}"
        self.number = number
        self.progress = progress
        self._registry = registry
        self._bot_login = bot_login
        self._interval = interval
        self._comment_id: int | None = None
        self.url: str | None = None
        self._last_edit = 0.0
        self._pending: asyncio.Task[None] | None = None
        self.run = run
        """The run viewer's record of this run, kept in step with the comment."""

    async def open(self) -> None:
        """Find the app's tracking comment on the issue (an earlier run's) or post one.

        Only a comment of the app's own account counts: anyone can paste the marker, and
        another bot's comment carrying it is not ours to edit."""
        body = render_tracking(self.progress, time.time())
        comments: Paginator[IssueComment] = self._client.rest.paginate(
            self._client.rest.issues.async_list_comments,
            owner=self._owner,
            repo=self._name,
            issue_number=self.number,
            per_page=100,
        )
        async for comment in comments:
            author = getattr(comment.user, "login", None)
            if MARKER in (comment.body or "") and author == self._bot_login:
                self._comment_id, self.url = comment.id, comment.html_url
                await self._edit(body)
                return
        created = await self._client.rest.issues.async_create_comment(
            self._owner, self._name, self.number, body=body
        )
        self._comment_id, self.url = created.parsed_data.id, created.parsed_data.html_url
        self._last_edit = time.monotonic()
        await self._report()

    async def update(self, *, force: bool = False, **changes: object) -> None:
        """Change what the comment shows; the edit happens now or once the interval has passed."""
        for name, value in changes.items():
            setattr(self.progress, name, value)
        if self.run is not None and "state" in changes:
            await self.run.update(state=RUN_STATES[self.progress.state])
        wait = self._interval - (time.monotonic() - self._last_edit)
        if force or wait <= 0:
            self._cancel_pending()
            await self._edit(render_tracking(self.progress, time.time()))
        elif self._pending is None:
            self._pending = asyncio.create_task(self._edit_later(wait))

    async def finish(
        self, state: State, headline: str, detail: str, *, patience: float = FINISH_PATIENCE
    ) -> None:
        """The last word on the job. It is worth waiting for: while GitHub fails (an outage, a
        rate limit), the edit is tried again, backing off up to a minute, for `patience` s."""
        for name, value in {"state": state, "headline": headline, "detail": detail}.items():
            setattr(self.progress, name, value)
        # Before any wait: an edit still pending must not land after this last one.
        self._cancel_pending()
        if self.run is not None:
            await self.run.event("outcome", state=state, headline=headline, detail=detail)
            await self.run.update(state=RUN_STATES[state], headline=headline, ended=time.time())
            await self.run.close()
        deadline = time.monotonic() + patience
        wait = 2.0
        while not await self._edit(render_tracking(self.progress, time.time())):
            if time.monotonic() + wait > deadline:
                log.error("tracking.finish_failed", state=state, patience=patience)
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 60.0)

    # AgentObserver
    async def plan_changed(self, plan: list[TodoItem]) -> None:
        if self.run is not None:
            items = [{"text": item.text, "status": item.status} for item in plan]
            await self.run.event("plan", items=items)
        await self.update(plan=list(plan))

    async def step_finished(self, record: StepRecord) -> None:
        usage = record.usage
        if self.run is not None:
            header = self.run.header
            await self.run.update(
                steps=header.steps + 1,
                prompt_tokens=header.prompt_tokens + usage.prompt_tokens,
                completion_tokens=header.completion_tokens + usage.completion_tokens,
            )
        await self.update(
            steps=self.progress.steps + 1,
            tokens=self.progress.tokens + usage.prompt_tokens + usage.completion_tokens,
        )

    async def _edit_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._pending = None
        await self._edit(render_tracking(self.progress, time.time()))

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    async def _edit(self, body: str) -> bool:
        """Show `body`; False when GitHub refused or failed (logged, never raised)."""
        if self._comment_id is None:
            return True
        self._last_edit = time.monotonic()
        edited = True
        try:
            await self._client.rest.issues.async_update_comment(
                self._owner, self._name, self._comment_id, body=body
            )
        except Exception:
            # Progress display must never break the job it reports on.
            log.warning("tracking.edit_failed", exc_info=True)
            edited = False
        await self._report()
        return edited

    async def _report(self) -> None:
        if self._registry is None:
            return
        p = self.progress
        await self._registry.report(
            self._key,
            {
                "state": p.state,
                "headline": p.headline,
                "started": p.started,
                "steps": p.steps,
                "tokens": p.tokens,
                "tracking_url": self.url,
                "run_url": p.run_url,
                "held": held_line(p.held) if p.held is not None and p.state == "queued" else None,
            },
        )


def plan_markdown(plan: Sequence[TodoItem]) -> str:
    return "\n".join(f"- {MARKS[item.status]} {item.text}" for item in plan)
