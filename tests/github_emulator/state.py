"""The emulator's in-memory world: apps, installations, users, repositories, issues and pulls."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROLES = ("admin", "maintain", "write", "triage", "read", "none")
"""Repository roles, strongest first, as `set_permission` accepts them."""

DEFAULT_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "pull_requests": "write",
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


@dataclass
class App:
    id: int
    slug: str
    owner: User
    public_key_pem: bytes
    created_at: datetime = field(default_factory=now)

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


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    path: Path
    installation: Installation
    default_branch: str
    private: bool = True
    roles: dict[str, str] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    created_at: datetime = field(default_factory=now)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

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
    """'app', 'installation', 'basic' or 'none'."""


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
