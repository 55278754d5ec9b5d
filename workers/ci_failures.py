"""What CI says about one commit: failed, pending and passed check runs, and the failures as text.

`read_ci` lists the commit's check runs (never the app's own), and for each failed one reads its
output, its annotations and, for a GitHub Actions job, the failed steps and the job's log, cut
down to the failing step. The text was written by strangers' tools: it is only cut and rendered
here (`render_failures` for the agent, `failure_lines` for a comment), never trusted.
`failure_signature` tells whether a fix left the same checks failing with the same errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from githubkit import GitHub
from githubkit.exception import GitHubException
from githubkit.rest.paginator import Paginator

log = structlog.get_logger("qwen_fix.ci_failures")

ACTIONS = "github-actions"
FAILED = frozenset({"failure", "timed_out"})
PASSED = frozenset({"success", "neutral", "skipped"})
APPROVAL = "action_required"

MAX_TITLE = 200
MAX_SUMMARY = 4_000
MAX_TEXT = 8_000
MAX_ANNOTATIONS = 30
MAX_ANNOTATION = 300
MAX_LINE = 400
"""Characters kept of one log line (a minified bundle can be one line of megabytes)."""
MAX_ERRORS = 50
MIN_LOG_SHARE = 1_500
"""Below this many characters a log excerpt says little: fewer checks get a log instead."""
LOG_READ_LIMIT = 8 * 1024 * 1024
"""Bytes of a job's log read at most; a longer log is cut there."""
LOG_TIMEOUT = httpx.Timeout(20.0)
LOG_DEADLINE = 60.0
"""Seconds one log download may take in all (the link GitHub gives lives a minute)."""
PARALLEL_READS = 4
CUT = "… ({n} lines cut) …"
CUT_CHARS = "… ({n} characters cut) …"
CUT_LINE = re.compile(r"… \((\d+) lines cut\) …")

TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z ?")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
STEP_START = "##[group]Run "
POST_JOB = "Post job cleanup."
LINT = re.compile(r"^(\S+?):\d+:\d+: ([A-Z]{1,4}\d{2,4})\b")
ERROR_LOOKING = re.compile(
    r"##\[error\]|\bFAILED\b|ERROR|npm ERR!|\bError:|\berror(?:\[\w+\])?:|Traceback \(most recent"
    r"|^E {3}|\bassert|exit code|^--- FAIL|" + LINT.pattern
)
TEST_ID = re.compile(r"^(FAILED|ERROR) (\S+::\S+|\S+\.py)\b|^(\S+::\S+) (FAILED|ERROR)\b")
ERROR_LINE = re.compile(r"^##\[error\]|^--- FAIL|(?:^|\s)(?:error(?:\[\w+\])?|Error):")


@dataclass(frozen=True, slots=True)
class PendingCheck:
    name: str
    status: str
    """"queued", "in_progress", "waiting", "requested" or "pending"."""
    since: datetime
    """When it started, else when its suite was made; UTC."""
    url: str | None


@dataclass(frozen=True, slots=True)
class FailedCheck:
    check_run_id: int
    name: str
    app: str
    """The slug of the app that ran it, e.g. "github-actions"."""
    conclusion: str
    """"failure" or "timed_out"."""
    url: str | None
    title: str
    summary: str
    text: str
    annotations: tuple[str, ...]
    """`path:line: message` of its failure- and warning-level annotations, failures first."""
    log: str
    """For a GitHub Actions job, its log cut down to the failing step; "" otherwise."""
    failed_steps: tuple[str, ...]
    errors: tuple[str, ...] = ()
    """Error lines found in the whole log (failing tests, `##[error]`, lint, `error:`)."""


@dataclass(frozen=True, slots=True)
class CiState:
    sha: str
    failed: tuple[FailedCheck, ...]
    pending: tuple[PendingCheck, ...]
    passed: tuple[str, ...]
    """Names of checks that concluded success, neutral or skipped."""
    waiting_approval: tuple[str, ...]
    """Checks (or GitHub Actions suites without jobs yet) waiting for a maintainer's approval."""
    other: tuple[str, ...]
    """`name (conclusion)` of the rest, cancelled or stale: not failures."""


class _NoLogLink(Exception):
    """GitHub gave no link to a job's log, or the link gave no log."""


# --- reading GitHub ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    """A check run as GitHub lists it, read leniently from the JSON: GitHub sets values its own
    schema (and so githubkit's model) lacks, such as the conclusion `stale` on old runs."""

    id: int
    name: str
    status: str
    conclusion: str | None
    started_at: datetime | None
    url: str | None
    app_id: int | None
    app: str
    """The app's slug."""
    suite_id: int | None
    title: str
    summary: str
    text: str
    annotations: int

    @classmethod
    def parse(cls, data: dict[str, Any]) -> _Run:
        app = data.get("app") or {}
        suite = data.get("check_suite") or {}
        output = data.get("output") or {}
        return cls(
            id=int(data["id"]),
            name=str(data.get("name") or ""),
            status=str(data.get("status") or ""),
            conclusion=data.get("conclusion"),
            started_at=_moment(data.get("started_at")),
            url=data.get("html_url") or data.get("details_url"),
            app_id=app.get("id"),
            app=str(app.get("slug") or ""),
            suite_id=suite.get("id"),
            title=str(output.get("title") or ""),
            summary=str(output.get("summary") or ""),
            text=str(output.get("text") or ""),
            annotations=int(output.get("annotations_count") or 0),
        )


async def read_ci(
    client: GitHub, repository: str, sha: str, *, own_app_id: int | None, log_budget: int = 12_000
) -> CiState:
    """The CI state of commit `sha`; the app's own check runs (`own_app_id`) do not count.

    A log or annotations that cannot be read leave that part empty; the rest is still read."""
    owner, name = repository.split("/", 1)
    every = await _check_runs(client, owner, name, sha)
    runs = sorted(
        (run for run in every if own_app_id is None or run.app_id != own_app_id),
        key=lambda run: (run.name, run.id),
    )
    completed = [run for run in runs if run.status == "completed"]
    failed = [run for run in completed if run.conclusion in FAILED]
    logs = _log_shares([run for run in failed if run.app == ACTIONS], log_budget)
    gate = asyncio.Semaphore(PARALLEL_READS)

    async def read(run: _Run) -> FailedCheck:
        async with gate:
            return await _failed_check(client, owner, name, run, logs.get(run.id, 0))

    return CiState(
        sha=sha,
        failed=tuple(await asyncio.gather(*(read(run) for run in failed))),
        pending=await _pending(client, owner, name, [r for r in runs if r.status != "completed"]),
        passed=tuple(run.name for run in completed if run.conclusion in PASSED),
        waiting_approval=(
            *(run.name for run in completed if run.conclusion == APPROVAL),
            *await _suites_awaiting_approval(client, owner, name, sha, every),
        ),
        other=tuple(
            f"{run.name} ({run.conclusion or 'no conclusion'})"
            for run in completed
            if run.conclusion not in FAILED | PASSED | {APPROVAL}
        ),
    )


async def _check_runs(client: GitHub, owner: str, name: str, sha: str) -> list[_Run]:
    pages: Paginator[dict[str, Any]] = client.rest.paginate(
        client.rest.checks.async_list_for_ref,
        map_func=lambda response: response.json()["check_runs"],
        owner=owner,
        repo=name,
        ref=sha,
        filter_="latest",
        per_page=100,
    )
    return [_Run.parse(run) async for run in pages]


def _log_shares(jobs: Sequence[_Run], budget: int) -> dict[int, int]:
    """Characters of log excerpt per job id: an equal share, but never so thin it says nothing
    (then only the first jobs by name get one)."""
    if not jobs or budget <= 0:
        return {}
    count = max(1, min(len(jobs), budget // MIN_LOG_SHARE))
    return {job.id: budget // count for job in jobs[:count]}


async def _failed_check(
    client: GitHub, owner: str, name: str, run: _Run, log_budget: int
) -> FailedCheck:
    annotations = await _annotations(client, owner, name, run)
    steps: tuple[str, ...] = ()
    excerpt = ""
    errors: tuple[str, ...] = ()
    if run.app == ACTIONS:
        steps = await _failed_steps(client, owner, name, run)
        if log_budget > 0:
            raw = await _job_log(client, owner, name, run)
            excerpt = trim_job_log(raw, steps, log_budget)
            errors = tuple(_error_lines(_clean_lines(raw)))
    return FailedCheck(
        check_run_id=run.id,
        name=run.name,
        app=run.app,
        conclusion=run.conclusion or "failure",
        url=run.url,
        title=_one_line(run.title, MAX_TITLE),
        summary=_cut_middle(run.summary, MAX_SUMMARY),
        text=_cut_middle(run.text, MAX_TEXT),
        annotations=annotations,
        log=excerpt,
        failed_steps=steps,
        errors=errors,
    )


async def _annotations(client: GitHub, owner: str, name: str, run: _Run) -> tuple[str, ...]:
    if not run.annotations:
        return ()
    kept: list[dict[str, Any]] = []
    pages: Paginator[dict[str, Any]] = client.rest.paginate(
        client.rest.checks.async_list_annotations,
        map_func=lambda response: response.json(),
        owner=owner,
        repo=name,
        check_run_id=run.id,
        per_page=100,
    )
    try:
        async for note in pages:
            if note.get("annotation_level") in ("failure", "warning"):
                kept.append(note)
            failures = sum(note.get("annotation_level") == "failure" for note in kept)
            if failures >= MAX_ANNOTATIONS or len(kept) >= 4 * MAX_ANNOTATIONS:
                break
    except GitHubException as exc:
        log.warning("ci.annotations_unreadable", check=run.name, error=_why(exc))
    kept.sort(key=lambda note: note.get("annotation_level") != "failure")
    return tuple(_annotation_line(note) for note in kept[:MAX_ANNOTATIONS])


def _annotation_line(note: dict[str, Any]) -> str:
    message = " ".join(str(note[key]) for key in ("title", "message") if note.get(key))
    return _one_line(f"{note.get('path')}:{note.get('start_line')}: {message}", MAX_ANNOTATION)


async def _failed_steps(client: GitHub, owner: str, name: str, run: _Run) -> tuple[str, ...]:
    # An Actions job's id is its check run's id.
    try:
        job = await client.rest.actions.async_get_job_for_workflow_run(owner, name, run.id)
    except GitHubException as exc:
        log.warning("ci.job_unreadable", check=run.name, error=_why(exc))
        return ()
    steps = job.json().get("steps") or []
    return tuple(str(step.get("name")) for step in steps if step.get("conclusion") in FAILED)


async def _job_log(client: GitHub, owner: str, name: str, run: _Run) -> str:
    """The job's log, "" when it cannot be read.

    GitHub answers with a redirect to a short-lived storage URL. githubkit would follow it with
    the installation token; the token must not go to another host, so the redirect is read
    here and the storage URL fetched without credentials."""
    direct = GitHub(client.auth, config=replace(client.config, follow_redirects=False))
    try:
        answer = await direct.rest.actions.async_download_job_logs_for_workflow_run(
            owner, name, run.id
        )
        if answer.status_code == 200:  # a proxy in between followed the redirect itself
            data = answer.content
            return _decode(data[:LOG_READ_LIMIT], cut=len(data) > LOG_READ_LIMIT)
        location = answer.headers.get("location")
        if not answer.is_redirect or not location:
            raise _NoLogLink(f"answer {answer.status_code} without a location")
        url = httpx.URL(str(answer.raw_request.url)).join(location)
        async with asyncio.timeout(LOG_DEADLINE):
            return await _download(url, client)
    except (GitHubException, httpx.HTTPError, TimeoutError, _NoLogLink) as exc:
        log.warning("ci.log_unreadable", check=run.name, error=_why(exc))
        return ""


async def _download(url: httpx.URL, client: GitHub) -> str:
    config = client.config
    async with (
        httpx.AsyncClient(
            timeout=LOG_TIMEOUT,
            verify=config.ssl_verify,
            trust_env=config.trust_env,
            proxy=config.proxy,
            headers={"User-Agent": config.user_agent},
        ) as storage,
        storage.stream("GET", url) as response,
    ):
        response.raise_for_status()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > LOG_READ_LIMIT:
                break
    data = b"".join(chunks)
    return _decode(data[:LOG_READ_LIMIT], cut=size > LOG_READ_LIMIT)


def _decode(data: bytes, *, cut: bool) -> str:
    text = data.decode("utf-8", errors="replace")
    if cut:
        text = text.rsplit("\n", 1)[0] + "\n##[warning]qwen-fix read only the start of this log\n"
    return text


def _why(exc: Exception) -> str:
    """What went wrong, for the log: a storage URL carries a signature, so never the message."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return type(exc).__name__ if status is None else f"{type(exc).__name__} {status}"


async def _pending(
    client: GitHub, owner: str, name: str, runs: Sequence[_Run]
) -> tuple[PendingCheck, ...]:
    suites: dict[int, datetime | None] = {}
    pending = []
    for run in runs:
        since = run.started_at
        if since is None and run.suite_id is not None:
            if run.suite_id not in suites:
                suites[run.suite_id] = await _suite_created(client, owner, name, run.suite_id)
            since = suites[run.suite_id]
        when = _utc(since or datetime.now(UTC))
        pending.append(PendingCheck(run.name, run.status, when, run.url))
    return tuple(pending)


async def _suite_created(client: GitHub, owner: str, name: str, suite_id: int) -> datetime | None:
    try:
        suite = await client.rest.checks.async_get_suite(owner, name, suite_id)
    except GitHubException as exc:
        log.warning("ci.suite_unreadable", suite=suite_id, error=_why(exc))
        return None
    return _moment(suite.json().get("created_at"))


async def _suites_awaiting_approval(
    client: GitHub, owner: str, name: str, sha: str, runs: Sequence[_Run]
) -> tuple[str, ...]:
    """GitHub Actions suites waiting for approval: a workflow from a first-time contributor's
    fork gets no jobs, hence no check runs, until a maintainer approves it."""
    with_runs = {run.suite_id for run in runs}
    pages: Paginator[dict[str, Any]] = client.rest.paginate(
        client.rest.checks.async_list_suites_for_ref,
        map_func=lambda response: response.json()["check_suites"],
        owner=owner,
        repo=name,
        ref=sha,
        per_page=100,
    )
    waiting = []
    async for suite in pages:
        app = suite.get("app") or {}
        if (
            suite.get("conclusion") == APPROVAL
            and suite.get("id") not in with_runs
            and app.get("slug") == ACTIONS
        ):
            waiting.append(str(app.get("name") or "GitHub Actions"))
    return tuple(waiting)


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- cutting a job's log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Section:
    """Lines [start, end) of a log: one step, from its `##[group]Run …` line (or the job's set-up
    before the first step, or post-job cleanup)."""

    start: int
    end: int
    header: str
    post: bool
    error: bool
    """Whether it holds a `##[error]` line."""


@dataclass(frozen=True, slots=True)
class _Detail:
    before: int
    after: int
    """Lines kept before and after an error-looking line."""
    tail: int
    """Last lines of the section kept."""
    command: int
    """Lines of the step's command kept after its header."""


DETAILS = (_Detail(3, 6, 20, 6), _Detail(2, 3, 10, 3), _Detail(1, 1, 6, 1), _Detail(0, 0, 3, 1))
"""From most to least context; the first excerpt within the budget is taken."""
MAX_SECTIONS = 3
MIN_LINE_CUT = 80
"""A budget too small for any whole line is still worth part of one from this size on."""


def trim_job_log(log: str, failed_steps: Sequence[str], budget: int) -> str:
    """The part of a GitHub Actions job log that tells why it failed, in `budget` characters.

    Timestamps go; the failing step's section is kept (the one with `##[error]`, else the one
    named like a failed step, else the last), and in it the lines around error-looking lines
    and its last lines; cuts are marked."""
    if budget <= 0:
        return ""
    lines = _clean_lines(log)
    if not lines:
        return ""
    chosen = _failing_sections(_sections(lines), failed_steps)
    kept: list[int] = []
    for detail in DETAILS:
        kept = sorted({i for section in chosen for i in _kept_lines(lines, section, detail)})
        text = _render(lines, kept)
        if len(text) <= budget:
            return text
    return _squeeze(lines, kept, budget)


def _clean_lines(log: str) -> list[str]:
    """Lines without timestamps, colours and control characters, each at most MAX_LINE long."""
    lines = []
    for raw in log.splitlines():
        line = CONTROL.sub("", ANSI.sub("", TIMESTAMP.sub("", raw))).rstrip()
        if len(line) > MAX_LINE:
            line = f"{line[:MAX_LINE]} {CUT_CHARS.format(n=len(line) - MAX_LINE)}"
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _sections(lines: Sequence[str]) -> list[_Section]:
    starts = [0]
    for index, line in enumerate(lines):
        if index and (line.startswith(STEP_START) or line == POST_JOB):
            starts.append(index)
    bounds = zip(starts, [*starts[1:], len(lines)], strict=True)
    return [
        _Section(
            start,
            end,
            header=lines[start],
            post=lines[start] == POST_JOB,
            error=any(line.startswith("##[error]") for line in lines[start:end]),
        )
        for start, end in bounds
    ]


def _failing_sections(sections: Sequence[_Section], failed_steps: Sequence[str]) -> list[_Section]:
    """The steps with an error (post-job cleanup's only when no step has one), else the failed
    steps by name (a step without a name is called `Run <command>`), else the last step."""
    erring = [s for s in sections if s.error and not s.post] or [s for s in sections if s.error]
    if erring:
        return erring[:MAX_SECTIONS]
    named = [s for s in sections if any(_runs(s, step) for step in failed_steps)]
    if named:
        return named[:MAX_SECTIONS]
    steps = [s for s in sections if not s.post] or list(sections)
    return steps[-1:]


def _runs(section: _Section, step: str) -> bool:
    """Whether the section is the step's: an unnamed step is called `Run <its command>`."""
    header = section.header.removeprefix("##[group]")
    return section.header.startswith(STEP_START) and (
        header == step or (step.startswith("Run ") and header.startswith(step))
    )


def _render(lines: Sequence[str], kept: Sequence[int]) -> str:
    """The kept lines (ascending indexes), each run of left-out lines marked with its count.

    Cuts already in `lines` (an excerpt cut again) count the lines they stand for, and merge
    with the cuts beside them."""
    out: list[str] = []
    cut = 0
    after = 0
    for index in [*kept, len(lines)]:
        cut += sum(_weight(line) for line in lines[after:index])
        if index < len(lines) and CUT_LINE.fullmatch(lines[index]):
            cut += _weight(lines[index])
        else:
            if cut:
                out.append(CUT.format(n=cut))
            if index < len(lines):
                out.append(lines[index])
            cut = 0
        after = index + 1
    return "\n".join(out)


def _squeeze(lines: Sequence[str], kept: Sequence[int], budget: int) -> str:
    """The first and (mostly) the last of the kept lines, within `budget`."""
    total = sum(_weight(line) for line in lines)
    marker = len(CUT.format(n=total)) + 1
    room = budget - marker
    end: list[int] = []
    used = 0
    for index in reversed(kept):
        cost = len(lines[index]) + 1 + marker
        if used + cost > (min(room, int(budget * 0.7)) if end else room):
            break
        end.append(index)
        used += cost
    start: list[int] = []
    for index in kept[: len(kept) - len(end)]:
        cost = len(lines[index]) + 1 + marker
        if used + cost > room:
            break
        start.append(index)
        used += cost
    if start or end:
        return _render(lines, start + end[::-1])
    if budget >= MIN_LINE_CUT and kept:
        return _cut_middle(_render(lines, kept[-1:]), budget, tail=0.7)
    everything = CUT.format(n=total)
    return everything if len(everything) <= budget else ""


def _kept_lines(lines: Sequence[str], section: _Section, detail: _Detail) -> set[int]:
    start, end = section.start, section.end
    kept = {start}
    if section.header.startswith(STEP_START):
        # The group after the header holds the command, then `shell:` and `env:`.
        for index in range(start + 1, min(end, start + 1 + detail.command)):
            if lines[index].startswith(("shell: ", "##[endgroup]")):
                break
            kept.add(index)
    for index in range(start, end):
        if ERROR_LOOKING.search(lines[index]):
            first, last = max(start, index - detail.before), min(end, index + detail.after + 1)
            kept.update(range(first, last))
    kept.update(range(max(start, end - detail.tail), end))
    return kept


# --- what failed, as a signature and as text ---------------------------------------------------


def _error_lines(lines: Iterable[str]) -> list[str]:
    """The lines that say what failed: failing tests, `##[error]`, lint findings, `error:`."""
    found: dict[str, None] = {}
    for line in lines:
        if TEST_ID.search(line) or LINT.search(line) or ERROR_LINE.search(line):
            found.setdefault(_one_line(line, MAX_ANNOTATION), None)
            if len(found) >= MAX_ERRORS:
                break
    return list(found)


NORMALIZE = (
    (
        re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (
        re.compile(
            r"(?:/tmp|/private/var/folders|/var/folders|/home/runner/work/_temp"
            r"|[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp)[^\s:'\",)]*"
        ),
        "<tmp>",
    ),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b"), "<hex>"),
    (
        re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|secs|seconds?|m|min|minutes?|h)\b"),
        "<duration>",
    ),
    (re.compile(r"(?<=\S):\d+(?::\d+)?(?=[:\s,)]|$)"), ""),
    (re.compile(r"\bline \d+"), "line <n>"),
    (re.compile(r"\s+"), " "),
)
GENERIC = re.compile(r"Process completed with exit code \d+", re.IGNORECASE)
"""What GitHub Actions says of every failed step: no help in telling failures apart."""


def failure_signature(failures: Sequence[FailedCheck]) -> str:
    """A short hash of what failed: the checks and their normalized errors (failing tests, lint
    codes by file, annotations, error lines), without times, durations, addresses, temporary
    paths or line numbers, so a rerun of the same failure gives the same signature."""
    items = sorted(
        f"{check.name}\t{check.conclusion}\t{item}"
        for check in failures
        for item in _signature_items(check)
    )
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def _signature_items(check: FailedCheck) -> set[str]:
    errors = check.errors or tuple(_error_lines(check.log.splitlines()))
    items = {_signature_line(line) for line in errors}
    items.update(_normalized(note) for note in check.annotations)
    if not items:
        items.add(_normalized(check.title))
    return items


def _signature_line(line: str) -> str:
    test = TEST_ID.search(line)
    if test:
        status, name = (test[1], test[2]) if test[1] else (test[4], test[3])
        return f"{status} {name}"
    lint = LINT.search(line)
    if lint:
        return f"{lint[1]}:{lint[2]}"
    return _normalized(line)


def _normalized(line: str) -> str:
    for pattern, replacement in NORMALIZE:
        line = pattern.sub(replacement, line)
    return line.strip()


def render_failures(failures: Sequence[FailedCheck], budget: int = 16_000) -> str:
    """Markdown for the agent: per check its conclusion, link, output, annotations, failed
    steps and log excerpt, in at most `budget` characters shared fairly between the checks."""
    if not failures or budget <= 0:
        return ""
    separators = 2 * (len(failures) - 1)
    whole = [_render_check(check, None) for check in failures]
    shares = _shares([len(text) for text in whole], budget - separators)
    sections = [_render_check(check, share) for check, share in zip(failures, shares, strict=True)]
    shown = [section for section in sections if section]
    hidden = len(failures) - len(shown)
    if hidden:
        checks = f"{hidden} {'more ' if shown else ''}failed check{'s' if hidden != 1 else ''}"
        shown.append(f"… and {checks}" if shown else f"{checks}: no room to show them")
    text = "\n\n".join(shown)
    if len(text) > budget and hidden:
        text = "\n\n".join(shown[:-1])
    return text if len(text) <= budget else _cut_middle(text, budget)


def _render_check(check: FailedCheck, limit: int | None) -> str:
    """The check's section, whole (`limit` None) or in at most `limit` characters."""
    head = [f"## {_one_line(check.name, MAX_TITLE)} ({check.conclusion})"]
    if check.url:
        head.append(f"Link: {_one_line(check.url, MAX_ANNOTATION)}")
    if check.failed_steps:
        steps = ", ".join(_code(_one_line(step, MAX_TITLE)) for step in check.failed_steps)
        head.append(_one_line(f"Failed steps: {steps}", MAX_ANNOTATION))
    if limit is not None:
        head = _fitting(head, limit + 1)
        if not head:
            return ""
    fixed = "\n".join(head)
    parts = [
        (_titled, "Title: ", check.title),
        (_titled, "Summary:\n", check.summary),
        (_titled, "Details:\n", check.text),
        (_listed, "Annotations:\n", "\n".join(f"- {note}" for note in check.annotations)),
        (_log_block, "Log of the failing step:\n", check.log),
    ]
    present = [(render, label, body) for render, label, body in parts if body.strip()]
    if limit is None:
        return "\n\n".join([fixed, *(render(label, body, None) for render, label, body in present)])
    room = limit - len(fixed) - 2 * len(present)
    needs = [len(render(label, body, None)) for render, label, body in present]
    shares = _shares(needs, room)
    rendered = [
        render(label, body, share)
        for (render, label, body), share in zip(present, shares, strict=True)
    ]
    text = "\n\n".join([fixed, *(part for part in rendered if part)])
    return text if len(text) <= limit else _cut_middle(text, limit)


MIN_PART = 40
"""A part given less room than this is left out rather than shown as a stub."""


def _titled(label: str, body: str, limit: int | None) -> str:
    if limit is None or len(label) + len(body) <= limit:
        return label + body
    if limit < MIN_PART:
        return ""
    return label + _cut_middle(body, limit - len(label))


def _listed(label: str, body: str, limit: int | None) -> str:
    """A list cut at the end: the first items (failures) matter most."""
    if limit is None or len(label) + len(body) <= limit:
        return label + body
    if limit < MIN_PART:
        return ""
    items = body.split("\n")
    kept: list[str] = []
    for item in items:
        more = f"- … and {len(items) - len(kept)} more"
        if len(label) + sum(len(k) + 1 for k in [*kept, item]) + len(more) > limit:
            break
        kept.append(item)
    return label + "\n".join([*kept, f"- … and {len(items) - len(kept)} more"])


def _log_block(label: str, body: str, limit: int | None) -> str:
    """The log excerpt in a code block whose fence no backtick run in it can close; cut again,
    around its errors, when it does not fit."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    overhead = len(label) + 2 * len(fence) + 2
    if limit is not None and overhead + len(body) > limit:
        if limit < overhead + MIN_PART:
            return ""
        body = trim_job_log(body, (), limit - overhead)
    return f"{label}{fence}\n{body}\n{fence}"


def _shares(needs: Sequence[int], total: int) -> list[int]:
    """`total` split fairly: what needs less than an equal share gets all it needs, and the
    rest is split equally between the others."""
    shares = [0] * len(needs)
    left = sorted(range(len(needs)), key=lambda index: needs[index])
    remaining = max(0, total)
    while left:
        fair = remaining // len(left)
        if needs[left[0]] > fair:
            for index in left:
                shares[index] = fair
            break
        index = left.pop(0)
        shares[index] = needs[index]
        remaining -= needs[index]
    return shares


def failure_lines(failures: Sequence[FailedCheck], limit: int = 5) -> list[str]:
    """One short line per failed check, for a comment: what failed and the first error.

    Text from the checks goes in code spans, where GitHub renders no markup and no mention."""
    lines = [_failure_line(check) for check in failures[:limit]]
    more = len(failures) - limit
    if more > 0:
        lines.append(f"… and {more} more failed check{'s' if more != 1 else ''}")
    return lines


def _failure_line(check: FailedCheck) -> str:
    verb = "timed out" if check.conclusion == "timed_out" else "failed"
    line = f"{_code(_one_line(check.name, 80))} {verb}"
    if check.failed_steps:
        line += f" at step {_code(_one_line(check.failed_steps[0], 80))}"
    headline = _headline(check)
    if headline:
        line += f": {_code(_one_line(headline, 120))}"
    count = len(check.annotations)
    if count:
        line += f" ({count} annotation{'s' if count != 1 else ''})"
    return line


def _headline(check: FailedCheck) -> str:
    """The first thing worth reading: the title, a failing test or lint finding, an annotation,
    an error line; GitHub Actions' own "Process completed with exit code 1" last."""
    errors = check.errors or tuple(_error_lines(check.log.splitlines()))
    candidates = [
        check.title,
        *(line for line in errors if TEST_ID.search(line) or LINT.search(line)),
        *(note for note in check.annotations if not GENERIC.search(note)),
        *(line for line in errors if not GENERIC.search(line)),
        *check.summary.strip().splitlines()[:1],
        *check.annotations,
        *errors,
    ]
    return next((text.strip() for text in candidates if text.strip()), "")


# --- text helpers ------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    if limit <= 0:
        return ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _code(text: str) -> str:
    """`text` as a Markdown code span."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _cut_middle(text: str, limit: int, tail: float = 0.5) -> str:
    """`text` in at most `limit` characters: whole lines from its start and end (`tail` of the
    room for the end), the cut marked; within a line when no whole line fits."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    lines = text.split("\n")
    marker = CUT.format(n=sum(_weight(line) for line in lines))
    room = limit - len(marker)
    if room > 0:
        end = _fitting(reversed(lines), int(room * tail))[::-1]
        start = _fitting(lines[: len(lines) - len(end)], room - _cost(end))
        if start or end:
            cut = sum(_weight(line) for line in lines[len(start) : len(lines) - len(end)])
            # A cut next to an earlier cut (in a log excerpt) becomes one with both counts.
            if start and CUT_LINE.fullmatch(start[-1]):
                cut += _weight(start.pop())
            if end and CUT_LINE.fullmatch(end[0]):
                cut += _weight(end.pop(0))
            return "\n".join([*start, CUT.format(n=cut), *end])
    marker = CUT_CHARS.format(n=len(text))
    if limit <= len(marker) + 2:
        return text[len(text) - limit :]
    room = limit - len(marker)
    end_chars = int(room * tail)
    start_chars = room - end_chars
    cut = len(text) - start_chars - end_chars
    return f"{text[:start_chars]}{CUT_CHARS.format(n=cut)}{text[len(text) - end_chars :]}"


def _weight(line: str) -> int:
    """Lines of the original a line stands for: a cut's count, else one."""
    cut = CUT_LINE.fullmatch(line)
    return int(cut[1]) if cut else 1


def _fitting(lines: Iterable[str], room: int) -> list[str]:
    """The leading lines whose text and newline fit in `room`."""
    kept: list[str] = []
    used = 0
    for line in lines:
        used += len(line) + 1
        if used > room:
            break
        kept.append(line)
    return kept


def _cost(lines: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in lines)
