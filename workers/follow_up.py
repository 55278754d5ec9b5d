"""Follow-ups: a reviewer's request on a qwen-fix pull request becomes a commit and a reply.

All requests of one review become one job. Each review comment gets a reply in its thread,
and the thread is resolved when the new commit changed the file it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import cast

import structlog
from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit.rest.paginator import Paginator
from githubkit_schemas.latest.models import (
    PullRequest,
    PullRequestReview,
    PullRequestReviewComment,
)

from bot.commands import mentions
from bot.jobs import FollowUpJob
from bot.repo_config import RepoConfig
from workers.agent.task import Task
from workers.change_guard import left_out_markdown
from workers.git import GitError
from workers.limits import job_time_limit
from workers.pipeline import (
    Deps,
    JobFailed,
    Outcome,
    Run,
    load_repo_config,
    open_tracking,
    run_agent_stage,
    run_tracked,
    safe_name,
)
from workers.pr_body import clamp
from workers.publish import (
    Commit,
    NothingToPublish,
    branch_is_protected,
    post_check_run,
    publish_commit,
)
from workers.push_target import PullFacts, PushPolicy, Refusal, follow_up_branch
from workers.tracking import TrackingComment
from workers.workspace import Checkout, branch_head, clean_up, prepare

log = structlog.get_logger("qwen_fix.follow_up")

FIXES = re.compile(r"\b(?:fixes|closes|resolves)\s+#(\d+)", re.I)
REVIEW_THREADS = """
query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100) {
        nodes { id isResolved comments(first: 100) { nodes { databaseId } } }
      }
    }
  }
}"""
RESOLVE_THREAD = """
mutation($id: ID!) { resolveReviewThread(input: {threadId: $id}) { thread { id isResolved } } }"""


@dataclass(frozen=True, slots=True)
class Request:
    """One thing a reviewer asked, with where it was asked and the thread around it."""

    author: str
    body: str
    comment_id: int | None = None
    """A review comment (reply in its thread) or a conversation comment; None for a review body."""
    in_review_thread: bool = False
    path: str | None = None
    line: int | None = None
    diff_hunk: str | None = None
    thread: tuple[str, ...] = ()
    """Earlier comments of the same thread, `@author: body`, oldest first."""


async def follow_up(deps: Deps, job: FollowUpJob) -> Outcome:
    try:
        return await _follow_up_job(deps, job)
    finally:
        # Also when nothing was asked or the push was refused: the job is no longer active.
        await deps.registry.finish(job.work_key(), job.job_id())


async def _follow_up_job(deps: Deps, job: FollowUpJob) -> Outcome:
    client = await deps.github.installation(job.installation_id)
    owner, name = job.repository.split("/", 1)
    pull = (await client.rest.pulls.async_get(owner, name, job.pull_number)).parsed_data
    requests = await gather_requests(client, job, deps.config.command_name)
    if not requests:
        log.info("follow_up.nothing_asked")
        return Outcome("nothing-asked")
    settings = deps.config
    limit = job_time_limit(settings.agent, settings.test_timeout, settings.queue_timeout)
    async with deps.registry.lock(job.work_key(), timeout=limit):
        found = await prepare(
            deps.github,
            client,
            deps.mirrors,
            job.installation_id,
            job.repository,
            deps.config.data_dir / "jobs" / safe_name(job.job_id()),
        )
        try:
            config = await load_repo_config(found)
            target = await pull_push_target(deps, client, pull, found, config)
            if isinstance(target, Refusal):
                log.info("follow_up.refused", reason=target.reason)
                await _reply_all(client, job, requests, target.reason)
                return Outcome("refused", pull.number, pull.html_url)
            found = replace(found, base=await branch_head(deps.mirrors, found, target))
            tracking = await open_tracking(
                deps, job, client, "Working on the review", pr_url=pull.html_url
            )
            work = _follow_up(deps, job, client, pull, found, config, target, requests, tracking)
            return await run_tracked(deps, job, tracking, work)
        finally:
            clean_up(found)


async def pull_push_target(
    deps: Deps, client: GitHub, pull: PullRequest, found: Checkout, config: RepoConfig
) -> str | Refusal:
    """The branch of `pull` the app may push to, or why not (workers/push_target.py)."""
    head_repo = pull.head.repo.full_name if pull.head.repo is not None else None
    same_repo = head_repo is not None and head_repo.casefold() == found.repository.casefold()
    facts = PullFacts(
        number=pull.number,
        repository=found.repository,
        head_repository=head_repo,
        head_ref=pull.head.ref,
        author=_login(pull.user),
        default_branch=found.default_branch,
        protected=same_repo and await branch_is_protected(client, found.repository, pull.head.ref),
    )
    policy = PushPolicy(
        bot_login=await deps.github.bot_login(),
        branch_prefix=config.branch_prefix,
        people_pull_requests=config.follow_ups == "any",
    )
    return follow_up_branch(facts, policy, deps.config.command_name)


async def _follow_up(
    deps: Deps,
    job: FollowUpJob,
    client: GitHub,
    pull: PullRequest,
    found: Checkout,
    config: RepoConfig,
    branch: str,
    requests: list[Request],
    tracking: TrackingComment,
) -> Outcome:
    untrusted, trusted = await _task_texts(client, job.repository, pull, requests)
    task = Task(
        title=f"Review feedback on pull request #{pull.number}: {pull.title}",
        body=untrusted,
        mode=job.mode,
        request=trusted,
        requested_by=job.triggered_by,
    )
    run = await run_agent_stage(
        deps, job.job_id(), found, task, tracking, config, verify=job.mode == "fix"
    )
    summary = run.result.summary or run.result.reason
    if job.mode != "fix" or not run.patch.strip():
        await _reply_all(client, job, requests, summary)
        headline = "Answered" if job.mode != "fix" else "No change was needed"
        await tracking.finish("done", headline, summary)
        return Outcome("replied")
    return await _commit_and_reply(deps, job, client, pull, found, branch, requests, run, tracking)


async def _commit_and_reply(
    deps: Deps,
    job: FollowUpJob,
    client: GitHub,
    pull: PullRequest,
    found: Checkout,
    branch: str,
    requests: list[Request],
    run: Run,
    tracking: TrackingComment,
) -> Outcome:
    await tracking.update(state="publishing", headline="Pushing a commit")
    summary = run.result.summary or run.result.reason
    first_line = summary.strip().splitlines()[0][:70] if summary.strip() else "Address review"
    message = f"{first_line}\n\nRequested by @{job.triggered_by} on #{pull.number}."
    commit = await commit_to_pull_request(client, found, run, message, branch)
    # A person asked for this commit: automatic CI fixing, if a push paused it, resumes.
    await deps.ci_ledger.pushed(job.repository, branch, commit.sha)
    await deps.ci_ledger.resume(job.repository, branch)
    if run.verification is not None:
        await post_check_run(
            client, job.repository, commit.sha, run.verification, app_id=deps.github.app_id
        )
    left_out = left_out_markdown(commit.left_out)
    reply = f"Done in {commit.sha[:7]}: {summary}" + (f"\n\n{left_out}" if left_out else "")
    await _reply_all(client, job, requests, reply)
    await _resolve_threads(client, job.repository, pull.number, requests, commit.files)
    await tracking.finish("done", f"Pushed {commit.sha[:7]}", reply)
    return Outcome("pushed", pull.number, pull.html_url, branch=branch, commit=commit.sha)


async def commit_to_pull_request(
    client: GitHub, found: Checkout, run: Run, message: str, branch: str
) -> Commit:
    """The run's patch as one commit on the pull request's `branch`, never forced over what
    others pushed; JobFailed, saying why, when nothing could be published or the branch moved."""
    try:
        return await publish_commit(
            client, found, run.patch, message,
            branch=branch, force=False, signed=run.config.signed_commits,
        )  # fmt: skip
    except NothingToPublish as exc:
        raise JobFailed(f"Nothing of the change could be published.\n\n{exc}") from None
    except (GitError, RequestFailed) as exc:
        raise JobFailed(
            f"The branch `{branch}` moved while I worked, so my commit was not pushed. "
            "Ask again and I will start from its new head."
        ) from exc


async def gather_requests(client: GitHub, job: FollowUpJob, name: str) -> list[Request]:
    """What the reviewer asked: every comment of the review (or the one comment) that
    mentions the app, each with its thread; the review body when it mentions the app."""
    owner, repo = job.repository.split("/", 1)
    if job.source == "conversation":
        assert job.comment_id is not None
        comment = (
            await client.rest.issues.async_get_comment(owner, repo, job.comment_id)
        ).parsed_data
        return [Request(_login(comment.user), comment.body or "", comment_id=comment.id)]
    comments: Paginator[PullRequestReviewComment] = client.rest.paginate(
        client.rest.pulls.async_list_review_comments,
        owner=owner,
        repo=repo,
        pull_number=job.pull_number,
        per_page=100,
    )
    everything = [comment async for comment in comments]
    chosen = [
        c
        for c in everything
        if (c.id == job.comment_id or (job.review_id and c.pull_request_review_id == job.review_id))
        and mentions(c.body, name)
    ]
    requests = [_review_request(c, everything) for c in chosen]
    if job.review_id is not None:
        reviews: Paginator[PullRequestReview] = client.rest.paginate(
            client.rest.pulls.async_list_reviews,
            owner=owner,
            repo=repo,
            pull_number=job.pull_number,
            per_page=100,
        )
        async for review in reviews:
            if review.id == job.review_id and mentions(review.body or "", name):
                requests.insert(0, Request(_login(review.user), review.body or ""))
    return requests


def _review_request(
    comment: PullRequestReviewComment, everything: list[PullRequestReviewComment]
) -> Request:
    root = comment.in_reply_to_id or comment.id
    earlier = [
        f"@{_login(c.user)}: {c.body}"
        for c in everything
        if (c.id == root or c.in_reply_to_id == root) and c.id < comment.id
    ]
    return Request(
        author=_login(comment.user),
        body=comment.body,
        comment_id=comment.id,
        in_review_thread=True,
        path=comment.path,
        line=cast(int | None, comment.line or comment.original_line),
        diff_hunk=comment.diff_hunk,
        thread=tuple(earlier),
    )


async def _task_texts(
    client: GitHub, repository: str, pull: PullRequest, requests: list[Request]
) -> tuple[str, str]:
    """(untrusted, trusted): the context the agent reads as data (the original issue, earlier
    comments of each thread, the diff hunks), and what the reviewer asked."""
    context = ["The pull request you opened got review feedback."]
    match = FIXES.search(pull.body or "")
    if match:
        owner, name = repository.split("/", 1)
        issue = (await client.rest.issues.async_get(owner, name, int(match.group(1)))).parsed_data
        context.append(f"The original issue #{issue.number}: {issue.title}\n\n{issue.body or ''}")
    for number, request in enumerate(requests, 1):
        around = render_context(number, request)
        if around:
            context.append(around)
    asked = ["Change the code as asked:"]
    asked += [render_request(number, request) for number, request in enumerate(requests, 1)]
    return "\n\n".join(context), "\n\n".join(asked)


def render_request(number: int, request: Request) -> str:
    """One request as the agent reads it: where it was asked, and what."""
    lines = [f"## Request {number}, from @{request.author}"]
    if request.path:
        lines.append(f"On `{request.path}` line {request.line}:")
    lines.append(f"Request: {request.body}")
    return "\n".join(lines)


def render_context(number: int, request: Request) -> str:
    """What surrounds a request, written by others or taken from the branch: data."""
    lines = []
    if request.diff_hunk:
        lines.append(f"```diff\n{request.diff_hunk}\n```")
    if request.thread:
        lines.append("Earlier in this thread:\n" + "\n".join(request.thread))
    return f"## Around request {number}\n" + "\n".join(lines) if lines else ""


async def _reply_all(client: GitHub, job: FollowUpJob, requests: list[Request], text: str) -> None:
    owner, repo = job.repository.split("/", 1)
    body = clamp(text)
    answered_conversation = False
    for request in requests:
        if request.in_review_thread and request.comment_id is not None:
            await client.rest.pulls.async_create_reply_for_review_comment(
                owner, repo, job.pull_number, request.comment_id, body=body
            )
        elif not answered_conversation:
            quote = "\n".join(f"> {line}" for line in request.body.strip().splitlines()[:5])
            await client.rest.issues.async_create_comment(
                owner, repo, job.pull_number, body=clamp(f"{quote}\n\n{text}")
            )
            answered_conversation = True


async def _resolve_threads(
    client: GitHub, repository: str, number: int, requests: list[Request], changed: frozenset[str]
) -> None:
    addressed = {r.comment_id for r in requests if r.in_review_thread and r.path in changed}
    if not addressed:
        return
    owner, name = repository.split("/", 1)
    try:
        data = await client.async_graphql(
            REVIEW_THREADS, {"owner": owner, "name": name, "number": number}
        )
        for thread in data["repository"]["pullRequest"]["reviewThreads"]["nodes"]:
            ids = {c["databaseId"] for c in thread["comments"]["nodes"]}
            if not thread["isResolved"] and ids & addressed:
                await client.async_graphql(RESOLVE_THREAD, {"id": thread["id"]})
    except Exception:
        # Resolving is a courtesy; the commit and the replies are what matter.
        log.warning("follow_up.resolve_failed", exc_info=True)


def _login(user: object) -> str:
    return str(getattr(user, "login", "someone"))
