"""Failed CI on the app's own pull request: read the failures and push a fix, a bounded number
of times.

A check suite or workflow run failing on the head of a qwen-fix pull request queues one job per
pull request and commit, after a settle time (bot/receiver.py). The job first looks, with no
model and no sandbox (`examine`):
- the pull request is open, the app opened it from a branch of this repository, and it is still
  at the commit whose checks failed;
- the app pushed that commit: a push by a person pauses automatic fixing until someone asks
  again (`/qwen-fix fix-ci`, or a mention that makes the app push);
- fixing is on (`ci_fix.attempts`, capped by CI_FIX_MAX_ATTEMPTS), attempts are left, this
  commit was never tried, and its failures are not the ones the last fix was about;
- every check of the commit has concluded, except the app's own; checks still running are looked
  at again later, and after CI_PENDING_LIMIT they are reported and the job goes on without them.
Then it fixes (`fix_ci`): the failures (workers/ci_failures.py) go to the agent as untrusted
data, and one commit is pushed to the branch. That commit's CI brings the next job here.

Every limit lives in the worker's record (workers/ci_ledger.py), written from GitHub's answers;
whatever the model or a CI log says, the number of commits the app pushes is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from githubkit import GitHub
from githubkit_schemas.latest.models import PullRequest

from bot.jobs import CI_FIX, CiFixJob
from bot.repo_config import RepoConfig
from bot.repo_labels import RepoLabels
from workers.agent.task import Task
from workers.change_guard import left_out_markdown
from workers.ci_failures import (
    CiState,
    FailedCheck,
    failure_lines,
    failure_signature,
    read_ci,
    render_failures,
)
from workers.ci_ledger import Attempt
from workers.follow_up import commit_to_pull_request, pull_push_target
from workers.limits import job_time_limit
from workers.pipeline import (
    Deps,
    Outcome,
    Run,
    load_repo_config,
    open_tracking,
    run_agent_stage,
    run_tracked,
    safe_name,
)
from workers.pr_body import clamp, with_ci_fixes
from workers.publish import post_check_run
from workers.push_target import Refusal
from workers.tracking import TrackingComment
from workers.workspace import Checkout, branch_head, clean_up, prepare

log = structlog.get_logger("qwen_fix.ci_fix")

MAX_STARTS = 2
"""Times a fix of one commit may start: a fix that dies with its worker runs once more."""

REQUEST = """\
The checks listed below failed on this pull request's latest commit. Find out why, reproduce the \
failure in the sandbox where you can (run the same linter or test the check ran), fix the cause \
in the code, and run the tests. Do not skip, silence or delete the failing checks or tests, and \
do not edit CI configuration to make them pass: if the failure is outside the code (a flaky \
runner, a missing secret, a network outage), change nothing and say so in your summary."""


@dataclass(frozen=True, slots=True)
class LookAgain:
    """Checks are still running: look again in `after` seconds."""

    after: float


@dataclass(frozen=True, slots=True)
class Settled:
    """Nothing to fix now, and why (the job's result and log line)."""

    state: str


@dataclass(frozen=True, slots=True)
class FixDue:
    """A fix attempt is due: on which branch and commit, for which failures."""

    pull: PullRequest
    branch: str
    sha: str
    ci: CiState
    attempt: int
    """1-based number of this attempt on the branch."""
    allowed: int
    """Attempts the branch may have in all; a request by a person counts as its own budget."""


async def examine(deps: Deps, job: CiFixJob, job_try: int) -> LookAgain | Settled | FixDue:
    """Decide, from GitHub's answers and the worker's record, whether a fix is due now."""
    client = await deps.github.installation(job.installation_id)
    owner, name = job.repository.split("/", 1)
    pull = (await client.rest.pulls.async_get(owner, name, job.pull_number)).parsed_data
    if pull.state != "open":
        return Settled(f"pull request is {pull.state}")
    head_repo = pull.head.repo.full_name if pull.head.repo is not None else ""
    bot = await deps.github.bot_login()
    if _login(pull.user) != bot or head_repo.casefold() != job.repository.casefold():
        return Settled("not a pull request the app opened from this repository")
    branch, sha = pull.head.ref, pull.head.sha
    ledger = deps.ci_ledger
    if job.requested:
        await ledger.resume(job.repository, branch, fresh=True)
        allowed = max(deps.config.ci_fix.max_attempts, 1)
    else:
        if sha != job.head_sha:
            return Settled("the branch moved on; the checks of its new head decide")
        if await ledger.paused(job.repository, branch):
            return Settled("paused since a person pushed")
        config = await RepoLabels().config(deps.github, job.installation_id, job.repository)
        allowed = min((config or RepoConfig()).ci_fix.attempts, deps.config.ci_fix.max_attempts)
        if allowed == 0:
            return Settled("automatic CI fixing is off")
        if not await ledger.is_ours(job.repository, branch, sha):
            # The app records a commit right after pushing it; CI takes longer than that.
            await ledger.pause(job.repository, branch, f"{sha} was pushed by someone else")
            await _say_paused(deps, client, job, branch, sha)
            return Settled("paused: the head commit is not the app's")
    ci = await read_ci(client, job.repository, sha, own_app_id=deps.github.app_id)
    if ci.pending:
        waited = (datetime.now(UTC) - min(check.since for check in ci.pending)).total_seconds()
        limits = deps.config.ci_fix
        if waited < limits.pending_limit and job_try < limits.max_polls():
            return LookAgain(limits.poll)
        await _say_once(deps, client, job, branch, f"stuck:{sha}", _stuck_note(ci, waited))
    if not ci.failed:
        if ci.waiting_approval:
            await _say_once(deps, client, job, branch, f"approval:{sha}", _approval_note(ci))
        if job.requested:
            await _say(client, job, f"No check failed on {sha[:7]}: there is nothing to fix.")
        return Settled("no check failed")
    return await within_bounds(deps, client, job, pull, ci, allowed)


async def within_bounds(
    deps: Deps,
    client: GitHub,
    job: CiFixJob,
    pull: PullRequest,
    ci: CiState,
    allowed: int,
) -> Settled | FixDue:
    """A fix of `ci`'s failures, unless the branch's record says stop: this commit was tried,
    the last fix was about the very same failures, or no attempts are left. A request by a
    person always gets its attempt."""
    branch, ledger = pull.head.ref, deps.ci_ledger
    earlier = tuple(await ledger.attempts(job.repository, branch))
    if not job.requested:
        if await ledger.tried(job.repository, branch, ci.sha):
            return Settled("this commit was tried already")
        if earlier and earlier[-1].signature == failure_signature(ci.failed):
            await _give_up(deps, client, job, branch, ci, earlier, "same")
            return Settled("the same checks failed the same way after a fix")
        if len(earlier) >= allowed:
            await _give_up(deps, client, job, branch, ci, earlier, "spent")
            return Settled("no attempts left")
    return FixDue(pull, branch, ci.sha, ci, len(earlier) + 1, allowed)


async def fix_ci(deps: Deps, job: CiFixJob, due: FixDue) -> Outcome:
    """One attempt: the failures to the agent, one commit to the branch, the record updated."""
    await deps.registry.start(job.work_key(), job.job_id(), CI_FIX, job.model_dump(mode="json"))
    try:
        return await _fix_ci(deps, job, due)
    finally:
        await deps.registry.finish(job.work_key(), job.job_id())


async def _fix_ci(deps: Deps, job: CiFixJob, due: FixDue) -> Outcome:
    client = await deps.github.installation(job.installation_id)
    ledger = deps.ci_ledger
    settings = deps.config
    limit = job_time_limit(settings.agent, settings.test_timeout, settings.queue_timeout)
    async with deps.registry.lock(job.work_key(), timeout=limit):
        # Another job may have fixed or given up meanwhile: look at the record again.
        again = await within_bounds(deps, client, job, due.pull, due.ci, due.allowed)
        if isinstance(again, Settled):
            return Outcome("settled", due.pull.number, due.pull.html_url)
        due = again
        # This fix may have started before, on a worker that died: once more, not forever.
        if await ledger.note_count(job.repository, due.branch, f"start:{due.sha}") >= MAX_STARTS:
            stopped = f"Fixing CI of {due.sha[:7]} stopped twice with its worker; I stop here."
            await ledger.record(job.repository, due.branch, _attempt(due, stopped, None))
            await _say_once(deps, client, job, due.branch, f"crashed:{due.sha}", stopped)
            return Outcome("gave-up", due.pull.number, due.pull.html_url)
        found = await prepare(
            deps.github, client, deps.mirrors, job.installation_id, job.repository,
            settings.data_dir / "jobs" / safe_name(job.job_id()),
        )  # fmt: skip
        try:
            config = await load_repo_config(found)
            target = await pull_push_target(deps, client, due.pull, found, config)
            if isinstance(target, Refusal):
                log.info("ci_fix.refused", reason=target.reason)
                return Outcome("refused", due.pull.number, due.pull.html_url)
            head = await branch_head(deps.mirrors, found, target)
            if head != due.sha:
                return Outcome("moved", due.pull.number, due.pull.html_url)
            await ledger.count_note(job.repository, due.branch, f"start:{due.sha}")
            found = replace(found, base=head)
            names = _names(due.ci.failed)
            headline = f"Fixing CI: {names} (attempt {due.attempt} of {due.allowed})"
            tracking = await open_tracking(deps, job, client, headline, pr_url=due.pull.html_url)
            await tracking.update(environment=[_failed_line(check) for check in due.ci.failed])
            work = _attempt_fix(deps, job, client, found, config, target, due, tracking)
            return await run_tracked(deps, job, tracking, work, retry_verb="fix-ci")
        finally:
            clean_up(found)


async def _attempt_fix(
    deps: Deps,
    job: CiFixJob,
    client: GitHub,
    found: Checkout,
    config: RepoConfig,
    branch: str,
    due: FixDue,
    tracking: TrackingComment,
) -> Outcome:
    pull = due.pull
    task = Task(
        title=f"Failed checks on pull request #{pull.number}: {pull.title}",
        body=_context(pull, due.ci),
        mode="fix",
        request=REQUEST,
        requested_by=job.triggered_by if job.requested else "",
    )
    run = await run_agent_stage(deps, job.job_id(), found, task, tracking, config, verify=True)
    summary = (run.result.summary or run.result.reason).strip()
    if not run.patch.strip():
        await deps.ci_ledger.record(job.repository, due.branch, _attempt(due, summary, None))
        detail = f"The agent made no change ({run.result.exit_status}).\n\n{summary}"
        await tracking.finish("failed", "Could not fix CI", _with_retry(deps, detail))
        return Outcome("no-change", pull.number, pull.html_url)
    commit, left_out = await _push(client, job, found, branch, due, run, summary)
    await deps.ci_ledger.record(job.repository, due.branch, _attempt(due, summary, commit))
    if run.verification is not None:
        await post_check_run(
            client, job.repository, commit, run.verification, app_id=deps.github.app_id
        )
    await _note_in_body(deps, client, job, due.branch)
    detail = f"{summary}\n\n" + "\n".join(f"- {_failed_line(c)}" for c in due.ci.failed)
    detail += f"\n\n{left_out}" if left_out else ""
    await tracking.finish("done", f"Pushed {commit[:7]} to fix {_names(due.ci.failed)}", detail)
    return Outcome("pushed", pull.number, pull.html_url, branch=branch, commit=commit)


async def _push(
    client: GitHub,
    job: CiFixJob,
    found: Checkout,
    branch: str,
    due: FixDue,
    run: Run,
    summary: str,
) -> tuple[str, str]:
    """Push the change as one commit; (its sha, what was left out of it, as Markdown)."""
    first = summary.splitlines()[0][:60] if summary else "make the checks pass"
    message = (
        f"Fix CI ({_plain_names(due.ci.failed)}): {first}\n\n"
        f"Attempt {due.attempt} of {due.allowed} on #{job.pull_number}, for {due.sha[:7]}."
    )
    commit = await commit_to_pull_request(client, found, run, message, branch)
    return commit.sha, left_out_markdown(commit.left_out)


def _attempt(due: FixDue, summary: str, commit: str | None) -> Attempt:
    return Attempt(
        head_sha=due.sha,
        signature=failure_signature(due.ci.failed),
        checks=tuple(check.name for check in due.ci.failed),
        summary=summary[:500],
        commit=commit,
        links=tuple(check.url or "" for check in due.ci.failed),
    )


def _context(pull: PullRequest, ci: CiState) -> str:
    """What the agent reads as data: written by CI tools and by whoever wrote the code they ran."""
    lines = [
        f"CI failed on the head commit of pull request #{pull.number}, which you opened.",
        render_failures(ci.failed),
    ]
    if ci.pending:
        lines.append("Still running (not waited for): " + ", ".join(c.name for c in ci.pending))
    return "\n\n".join(lines)


async def _note_in_body(deps: Deps, client: GitHub, job: CiFixJob, branch: str) -> None:
    """The pull request's "CI fixes" section lists every attempt on the branch."""
    owner, name = job.repository.split("/", 1)
    attempts = await deps.ci_ledger.attempts(job.repository, branch)
    lines = [_attempt_line(number, attempt) for number, attempt in enumerate(attempts, 1)]
    pull = (await client.rest.pulls.async_get(owner, name, job.pull_number)).parsed_data
    body = with_ci_fixes(pull.body or "", lines)
    await client.rest.pulls.async_update(owner, name, job.pull_number, body=body)


def _attempt_line(number: int, attempt: Attempt) -> str:
    links = attempt.links or ("",) * len(attempt.checks)
    checks = ", ".join(
        f"[`{check}`]({link})" if link else f"`{check}`"
        for check, link in zip(attempt.checks, links, strict=False)
    )
    result = f"pushed {attempt.commit[:7]}" if attempt.commit else "no change made"
    first = attempt.summary.splitlines()[0] if attempt.summary else ""
    return f"{number}. {checks} failed on {attempt.head_sha[:7]}: {result}. {first}".rstrip()


async def _give_up(
    deps: Deps,
    client: GitHub,
    job: CiFixJob,
    branch: str,
    ci: CiState,
    earlier: tuple[Attempt, ...],
    why: str,
) -> None:
    sha = ci.sha
    reason = {
        "same": "the same checks failed with the same errors after my last fix",
        "spent": f"{len(earlier)} attempt{'s' if len(earlier) != 1 else ''} "
        "did not make the checks pass, and that is all this repository allows",
    }[why]
    still = "\n".join(f"- {line}" for line in failure_lines(ci.failed))
    tried = "\n".join(_attempt_line(n, attempt) for n, attempt in enumerate(earlier, 1))
    body = (
        f"❌ **Could not fix CI** on {sha[:7]}: {reason}.\n\n"
        f"Still failing:\n{still}\n\n"
        f"What I tried:\n{tried or 'nothing yet'}\n\n"
        f"I stop here. Push a fix yourself, or comment `/{deps.config.command_name} fix-ci` "
        "to have me try again."
    )
    await _say_once(deps, client, job, branch, f"gave-up:{sha}", body)


async def _say_paused(deps: Deps, client: GitHub, job: CiFixJob, branch: str, sha: str) -> None:
    body = (
        f"CI failed on {sha[:7]}, a commit I did not push. I leave CI on this pull request to "
        f"people now. Comment `/{deps.config.command_name} fix-ci` (or mention me with a "
        "request) to have me fix it again."
    )
    await _say_once(deps, client, job, branch, f"paused:{sha}", body)


async def _say(client: GitHub, job: CiFixJob, body: str) -> None:
    owner, name = job.repository.split("/", 1)
    await client.rest.issues.async_create_comment(owner, name, job.pull_number, body=clamp(body))


async def _say_once(
    deps: Deps, client: GitHub, job: CiFixJob, branch: str, note: str, body: str
) -> None:
    """A comment on the pull request, once per note however many jobs reach this point."""
    if not await deps.ci_ledger.note_once(job.repository, branch, note):
        return
    await _say(client, job, body)
    log.info("ci_fix.said", note=note.split(":", 1)[0])


def _stuck_note(ci: CiState, waited: float) -> str:
    stuck = ", ".join(f"`{check.name}` ({check.status})" for check in ci.pending)
    waited_for = f"{int(waited // 60)} minutes" if waited >= 120 else f"{int(waited)} seconds"
    return (
        f"⏳ These checks on {ci.sha[:7]} have not finished after {waited_for}: {stuck}. "
        "I do not wait for them any longer."
    )


def _approval_note(ci: CiState) -> str:
    waiting = ", ".join(f"`{name}`" for name in ci.waiting_approval)
    return (
        f"⏸️ {waiting} on {ci.sha[:7]} wait for a maintainer's approval before they run "
        "(the repository's Actions settings ask for it on runs triggered by apps). Once they "
        "have run, I look at them if they fail."
    )


def _with_retry(deps: Deps, detail: str) -> str:
    return f"{detail}\n\nComment `/{deps.config.command_name} fix-ci` to try again."


def _names(checks: tuple[FailedCheck, ...]) -> str:
    return ", ".join(f"`{check.name}`" for check in checks)


def _plain_names(checks: tuple[FailedCheck, ...]) -> str:
    return ", ".join(check.name for check in checks)[:60]


def _failed_line(check: FailedCheck) -> str:
    name = f"[`{check.name}`]({check.url})" if check.url else f"`{check.name}`"
    title = f": {check.title}" if check.title else ""
    return f"❌ {name} {check.conclusion}{title}"


def _login(user: object) -> str:
    return str(getattr(user, "login", ""))
