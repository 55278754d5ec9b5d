"""The job contract between the receiver and the workers: job names and payload models.

The receiver enqueues by name only; it never imports worker code.
"""

from __future__ import annotations

from typing import Literal

from arq.connections import ArqRedis
from pydantic import BaseModel, Field

SOLVE_ISSUE = "solve_issue"
"""arq function name of the job that turns an issue into a pull request, a plan or an answer."""
FOLLOW_UP = "follow_up"
"""arq function name of the job that changes a qwen-fix pull request as a reviewer asks."""

CI_FIX = "ci_fix"
"""arq function name of the job that reads the failed checks of a qwen-fix pull request and,
within its bounds, pushes a fix."""

REVIEW_SETTLE_SECONDS = 3.0
"""A review's comments arrive as separate deliveries; its job waits this long to gather them."""


class IssueJob(BaseModel):
    """Everything a worker needs to start on an issue; the rest it reads from GitHub."""

    installation_id: int
    repository: str = Field(description="owner/name")
    issue_number: int
    triggered_by: str = Field(description="login of the user whose action started the job")
    delivery_id: str = Field(description="X-GitHub-Delivery of the triggering webhook")
    mode: Literal["fix", "plan", "ask"] = "fix"
    instruction: str = Field("", description="text after the command, from a comment trigger")
    comment_id: int | None = Field(None, description="the triggering comment, if any")

    def job_id(self) -> str:
        """arq job id: one job per delivery, so a redelivered webhook never runs twice."""
        return f"{SOLVE_ISSUE}:{self.delivery_id}"

    def work_key(self) -> str:
        return f"{self.repository}#{self.issue_number}"


class FollowUpJob(BaseModel):
    """A reviewer's request on one of the app's pull requests."""

    installation_id: int
    repository: str
    pull_number: int
    triggered_by: str
    delivery_id: str
    source: Literal["review_comment", "review", "conversation"]
    instruction: str = ""
    mode: Literal["fix", "plan", "ask"] = "fix"
    comment_id: int | None = None
    review_id: int | None = Field(None, description="all comments of one review share one job")

    def job_id(self) -> str:
        if self.review_id is not None:
            return f"{FOLLOW_UP}:{self.repository}#{self.pull_number}:review:{self.review_id}"
        return f"{FOLLOW_UP}:{self.delivery_id}"

    def work_key(self) -> str:
        return f"{self.repository}#{self.pull_number}"


class CiFixJob(BaseModel):
    """Checks failed on one of the app's pull requests (or someone asked `/qwen-fix fix-ci`)."""

    installation_id: int
    repository: str
    pull_number: int
    triggered_by: str = Field(description="who pushed the commit, or who asked")
    delivery_id: str
    head_sha: str = Field("", description="the commit whose checks failed; empty when asked")
    requested: bool = Field(False, description="a person asked, so the job is not automatic")
    comment_id: int | None = None

    def job_id(self) -> str:
        """Automatic jobs: one per pull request and head commit, so every suite completing on
        that commit joins the same job. A request: one per delivery."""
        if self.requested:
            return f"{CI_FIX}:{self.delivery_id}"
        return f"{CI_FIX}:{self.repository}#{self.pull_number}:{self.head_sha}"

    def work_key(self) -> str:
        return f"{self.repository}#{self.pull_number}"


Job = IssueJob | FollowUpJob | CiFixJob
JOB_NAMES: dict[type[BaseModel], str] = {
    IssueJob: SOLVE_ISSUE,
    FollowUpJob: FOLLOW_UP,
    CiFixJob: CI_FIX,
}


def job_name(job: Job) -> str:
    return JOB_NAMES[type(job)]


async def enqueue(queue: ArqRedis, job: Job, *, defer: float | None = None) -> bool:
    """Queue the job by name; False when a job with its id is already queued or kept.

    `defer`: seconds to wait first (a review's settle time is applied here)."""
    if defer is None and isinstance(job, FollowUpJob) and job.review_id:
        defer = REVIEW_SETTLE_SECONDS
    queued = await queue.enqueue_job(
        job_name(job), job.model_dump(mode="json"), _job_id=job.job_id(), _defer_by=defer
    )
    return queued is not None
