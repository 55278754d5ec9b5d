"""The job contract between the receiver and the workers: job names and payload models.

The receiver enqueues by name only; it never imports worker code.
"""

from __future__ import annotations

from typing import Literal

from arq.connections import ArqRedis
from pydantic import BaseModel, Field

SOLVE_ISSUE = "solve_issue"
"""arq function name of the job that turns an issue into a pull request."""


class IssueJob(BaseModel):
    """Everything a worker needs to start on an issue; the rest it reads from GitHub."""

    installation_id: int
    repository: str = Field(description="owner/name")
    issue_number: int
    triggered_by: str = Field(description="login of the user whose action started the job")
    delivery_id: str = Field(description="X-GitHub-Delivery of the triggering webhook")
    mode: Literal["fix", "plan"] = "fix"

    def job_id(self) -> str:
        """arq job id: one job per delivery, so a redelivered webhook never runs twice."""
        return f"{SOLVE_ISSUE}:{self.delivery_id}"


async def enqueue(queue: ArqRedis, job: IssueJob) -> bool:
    """Queue the job by name; False when a job with its id is already queued or kept."""
    queued = await queue.enqueue_job(SOLVE_ISSUE, job.model_dump(mode="json"), _job_id=job.job_id())
    return queued is not None
