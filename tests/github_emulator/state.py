"""The emulator's in-memory world: apps, installations, users, repositories, issues and pulls."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROLES = ("admin", "maintain", "write", "triage", "read", "none")
"""Repository roles, strongest first, as `set_permission` accepts them."""

DEFAULT_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
    "checks": "write",
    "actions": "read",
    "metadata": "read",
}
"""What an installation may do unless a test says otherwise."""


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class User:
    id: int
    login: str
    type: str = "User"
    created_at: datetime = field(default_factory=now)


@dataclass
class CallbackURL:
    """Where the OAuth web flow may send a browser back to, as an app's settings list it."""

    url: str
    wildcard: bool = False
    """Whether subdomains and subdirectories of `url` match too (GitHub's per-URL setting)."""


@dataclass
class App:
    id: int
    slug: str
    owner: User
    public_key_pem: bytes
    created_at: datetime = field(default_factory=now)
    name: str = ""
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    events: list[str] = field(
        default_factory=lambda: ["issues", "issue_comment", "pull_request_review_comment"]
    )
    webhook_url: str | None = None
    webhook_secret: str | None = None
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    callback_urls: list[CallbackURL] = field(default_factory=list)
    """The OAuth web flow's callback URLs; the first is used when a request names none."""

    @property
    def client_id(self) -> str:
        return f"Iv1.{self.id:016x}"


@dataclass
class Installation:
    id: int
    app: App
    account: User
    permissions: dict[str, str]
    created_at: datetime = field(default_factory=now)


@dataclass
class Token:
    value: str
    installation: Installation
    expires_at: datetime
    repository_ids: frozenset[int] | None
    """None: every repository of the installation, present and future."""


@dataclass
class OAuthCode:
    """The code `/login/oauth/authorize` sends a browser back with: one user token, once."""

    app: App
    user: User
    redirect_uri: str
    code_challenge: str | None
    """The PKCE S256 challenge the authorize request carried, if any."""
    expires_at: datetime


@dataclass
class UserToken:
    """A user-to-server token (`ghu_`) of a GitHub App, and the refresh token (`ghr_`) that
    replaces both; it sees what both the user and the app's installations see."""

    value: str
    app: App
    user: User
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None


@dataclass
class Reaction:
    id: int
    user: User
    content: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Comment:
    id: int
    issue_number: int
    user: User
    body: str
    reactions: list[Reaction] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class PullRequest:
    id: int
    head_ref: str
    base_ref: str
    draft: bool
    requested_reviewers: list[User] = field(default_factory=list)
    head_repo: Repo | None = field(default=None, repr=False, compare=False)
    """The fork holding `head_ref`; None when it is the pull's own repository."""
    maintainer_can_modify: bool = False
    """Whether the fork's owner allows edits from maintainers (fork pulls only)."""


@dataclass
class Issue:
    """An issue, or the issue half of a pull request (they share one number sequence)."""

    id: int
    number: int
    title: str
    body: str | None
    user: User
    labels: list[Label] = field(default_factory=list)
    state: str = "open"
    reactions: list[Reaction] = field(default_factory=list)
    pull: PullRequest | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    state_reason: str | None = None


@dataclass
class Review:
    """A submitted pull request review; its line comments are `ReviewComment`s with its id."""

    id: int
    pull_number: int
    user: User
    body: str
    state: str
    commit_id: str
    submitted_at: datetime = field(default_factory=now)


@dataclass
class ReviewComment:
    """A comment on a line of a pull's diff; replies share the root's thread."""

    id: int
    pull_number: int
    review_id: int
    user: User
    body: str
    path: str
    line: int
    side: str
    diff_hunk: str
    position: int
    commit_id: str
    in_reply_to: int | None = None
    reactions: list[Reaction] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)

    @property
    def thread_root(self) -> int:
        return self.in_reply_to if self.in_reply_to is not None else self.id


@dataclass
class CheckRun:
    id: int
    app: App
    head_sha: str
    name: str
    status: str = "queued"
    conclusion: str | None = None
    details_url: str | None = None
    external_id: str | None = None
    started_at: datetime | None = field(default_factory=now)
    completed_at: datetime | None = None
    output: dict[str, str | None] = field(
        default_factory=lambda: {"title": None, "summary": None, "text": None}
    )
    annotations: list[dict[str, Any]] = field(default_factory=list)
    """path, start_line, end_line, annotation_level, message, as GET .../annotations lists them."""
    suite_id: int | None = None
    """The check suite a test put it in; None: the app's implicit suite for the commit."""


@dataclass
class CheckSuite:
    """The check runs one app made for one commit; a workflow run has one, too."""

    id: int
    app: App
    head_sha: str
    head_branch: str | None
    status: str = "queued"
    conclusion: str | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class Job:
    """A job of a workflow run; on GitHub it is also a check run with the same id."""

    id: int
    run_id: int
    steps: list[dict[str, Any]]
    """name, status, conclusion, number (as GitHub lists them)."""
    log: str


@dataclass
class WorkflowRun:
    """A GitHub Actions run of one workflow file on one commit."""

    id: int
    name: str
    path: str
    head_sha: str
    head_branch: str | None
    event: str
    run_number: int
    suite_id: int
    actor: User
    status: str = "completed"
    conclusion: str | None = None
    job_ids: list[int] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    path: Path
    installation: Installation | None
    """None: the app is not installed on this repository (someone's fork, say)."""
    default_branch: str
    private: bool = True
    roles: dict[str, str] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    reviews: dict[int, Review] = field(default_factory=dict)
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)
    resolved_threads: set[int] = field(default_factory=set)
    """Ids of the root comments of resolved review threads."""
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    check_suites: dict[int, CheckSuite] = field(default_factory=dict)
    workflow_runs: dict[int, WorkflowRun] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    verified_commits: set[str] = field(default_factory=set)
    """Commits an app made through the git database API, which GitHub signs and verifies."""
    protected_branches: set[str] = field(default_factory=set)
    parent: Repo | None = field(default=None, repr=False, compare=False)
    """The repository this one was forked from."""
    forks: list[Repo] = field(default_factory=list, repr=False, compare=False)
    deleted: bool = False
    created_at: datetime = field(default_factory=now)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def source(self) -> Repo:
        """The root of the fork network: the repository every fork in it descends from."""
        return self if self.parent is None else self.parent.source

    def role_of(self, login: str) -> str:
        if login == self.owner.login:
            return "admin"
        return self.roles.get(login, "none")


@dataclass
class RequestRecord:
    """One request the emulator answered, for tests that check what the app did."""

    method: str
    path: str
    query: str
    status: int
    auth: str
    """'app', 'installation', 'user', 'basic' or 'none'."""
    body: bytes = b""
    """The request body as received (still gzipped where git sent it so)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Every header but Authorization, for tests that look for leaks."""


@dataclass
class HookDelivery:
    """One webhook delivery GitHub attempted to an app's webhook URL."""

    id: int
    guid: str
    app_id: int
    url: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    redelivery: bool
    request_headers: dict[str, str]
    request_payload: dict[str, object]
    status_code: int
    status: str
    duration: float
    response_headers: dict[str, str]
    response_body: str | None
    delivered_at: datetime = field(default_factory=now)


@dataclass
class ConfirmedManifest:
    """A manifest the user confirmed on the web; its code converts it into an app once."""

    manifest: dict[str, Any]
    owner: str
    confirmed_at: datetime = field(default_factory=now)


class World:
    """Everything the emulator knows; one lock guards writes from the test and server threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self.requests: list[RequestRecord] = []
        self.deliveries: list[HookDelivery] = []
        self.manifest_codes: dict[str, ConfirmedManifest] = {}
        """Codes of confirmed manifests not yet converted."""
        self.oauth_codes: dict[str, OAuthCode] = {}
        """Codes of the OAuth web flow not yet exchanged."""
        self.user_tokens: dict[str, UserToken] = {}
        """User-to-server tokens by their `ghu_` value; refreshing one removes it."""
        self.refresh_tokens: dict[str, UserToken] = {}
        """The same tokens by their `ghr_` refresh token."""
        self.content_limit: int | None = None
        """Content creations allowed per rolling minute; None: no secondary rate limit."""
        self.content_created: list[float] = []
        self.log_links: dict[str, tuple[str, datetime]] = {}
        """Secret path of a job's log download -> (log text, expiry), like blob storage's."""
        self.web_login: str | None = "app-owner"
        """The user signed in on the web pages (the manifest flow's app owner, the user the
        OAuth flow authorizes); None: the browser is signed out."""
        self._next_id = 1000

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def user(self, login: str, type: str = "User") -> User:
        """The user with that login, created on first mention."""
        with self.lock:
            if login not in self.users:
                self.users[login] = User(id=self.new_id(), login=login, type=type)
            return self.users[login]

    def repo(self, full_name: str) -> Repo | None:
        return self.repos.get(full_name.lower())

    def repos_of(self, installation: Installation) -> list[Repo]:
        return [repo for repo in self.repos.values() if repo.installation is installation]

    def next_number(self, repo: Repo) -> int:
        return max(repo.issues, default=0) + 1
