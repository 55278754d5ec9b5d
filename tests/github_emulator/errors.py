"""GitHub's error responses: `{"message", "documentation_url"}`, plus `errors` for 422."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

DOCS = "https://docs.github.com/rest"


class GitHubError(Exception):
    """Raised by a route to answer with GitHub's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        documentation_url: str = DOCS,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.documentation_url = documentation_url

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "documentation_url": self.documentation_url,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        body["status"] = str(self.status)
        return body


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def validation_failed(resource: str, field: str, code: str = "invalid") -> GitHubError:
    """The 422 GitHub sends when one field of the request is wrong."""
    return GitHubError(
        422, "Validation Failed", [{"resource": resource, "field": field, "code": code}]
    )


def validation_message(resource: str, message: str) -> GitHubError:
    """The 422 GitHub sends with a sentence instead of a field code."""
    errors = [{"resource": resource, "code": "custom", "message": message}]
    return GitHubError(422, "Validation Failed", errors)


async def render(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GitHubError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
