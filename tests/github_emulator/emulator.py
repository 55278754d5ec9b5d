"""`GitHubEmulator`: the set-up, inspection and delivery API tests use, around a running server."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.github_emulator import (
    bare_repos,
    ci,
    hook_deliveries,
    manifest_flow,
    pull_refs,
    reviews,
    webhooks,
)
from tests.github_emulator.auth import issue_token, issue_user_token, new_key_pair
from tests.github_emulator.faults import Faults
from tests.github_emulator.payloads import JSON, Payloads, node_id
from tests.github_emulator.rate_limits import RateLimits
from tests.github_emulator.server import ServerThread, build_app
from tests.github_emulator.state import (
    DEFAULT_PERMISSIONS,
    ROLES,
    App,
    CallbackURL,
    Comment,
    Installation,
    Issue,
    Label,
    PullRequest,
    Repo,
    RequestRecord,
    User,
    World,
    now,
)


class GitHubEmulator:
    """An in-memory GitHub (REST under `/api/v3`, git smart HTTP, the manifest and OAuth web
    flows on the root) on a free loopback port."""

    def __init__(self, root: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="github-emulator-")
            root = Path(self._tmp.name)
        self.world = World(root)
        self._server = ServerThread()
        self.web_url = f"http://127.0.0.1:{self._server.port}"
        self.payloads = Payloads(self.web_url)
        self.faults = Faults()
        """Arm a `Fault` here to make GitHub misbehave (tests/github_emulator/faults.py)."""
        self.rate_limits = RateLimits()
        """Primary rate limits per credential; lower `rate_limits.limit` to run out."""
        self.app = build_app(self.world, self.payloads, self.faults, self.rate_limits)

    @property
    def api_url(self) -> str:
        """REST root, GHES style: `http://127.0.0.1:PORT/api/v3`."""
        return self.payloads.api

    def start(self) -> GitHubEmulator:
        self._server.start(self.app)
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- set-up -------------------------------------------------------------------------------

    def add_user(self, login: str, type: str = "User") -> User:
        return self.world.user(login, type)

    def add_app(self, app_id: int, slug: str | None = None, owner: str = "app-owner") -> str:
        """Register an app; returns its private key PEM (the emulator keeps the public half)."""
        private_pem, public_pem = new_key_pair()
        app = App(app_id, slug or f"app-{app_id}", self.world.user(owner), public_pem)
        with self.world.lock:
            self.world.apps[app_id] = app
        return private_pem

    def add_installation(
        self,
        app_id: int,
        account_login: str,
        permissions: dict[str, str] | None = None,
        account_type: str = "User",
    ) -> int:
        installation = Installation(
            id=self.world.new_id(),
            app=self.world.apps[app_id],
            account=self.world.user(account_login, account_type),
            permissions=dict(DEFAULT_PERMISSIONS if permissions is None else permissions),
        )
        with self.world.lock:
            self.world.installations[installation.id] = installation
        return installation.id

    def add_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str],
        installation_id: int | None,
        default_branch: str = "main",
        private: bool = True,
    ) -> str:
        """A bare repo on disk with one commit of `files`; returns `owner/name`. With
        `installation_id` None the app is not installed on it."""
        path = self.world.root / "git" / owner / f"{name}.git"
        bare_repos.create(path, files, default_branch)
        installations = self.world.installations
        repo = Repo(
            id=self.world.new_id(),
            owner=self.world.user(owner),
            name=name,
            path=path,
            installation=None if installation_id is None else installations[installation_id],
            default_branch=default_branch,
            private=private,
        )
        with self.world.lock:
            self.world.repos[repo.full_name.lower()] = repo
        return repo.full_name

    def add_fork(
        self,
        repo: str,
        owner: str,
        name: str | None = None,
        installation_id: int | None = None,
        default_branch_only: bool = False,
    ) -> str:
        """`owner`'s fork of `repo`: a bare copy of its branches and tags now, as private as
        the parent, where the app is not installed unless `installation_id` says so; returns
        `owner/name` (the parent's name by default)."""
        parent = self._repo(repo)
        name = name or parent.name
        path = self.world.root / "git" / owner / f"{name}.git"
        only = parent.default_branch if default_branch_only else None
        bare_repos.clone(parent.path, path, only)
        installations = self.world.installations
        fork = Repo(
            id=self.world.new_id(),
            owner=self.world.user(owner),
            name=name,
            path=path,
            installation=None if installation_id is None else installations[installation_id],
            default_branch=parent.default_branch,
            private=parent.private,
            parent=parent,
        )
        with self.world.lock:
            self.world.repos[fork.full_name.lower()] = fork
            parent.forks.append(fork)
        return fork.full_name

    def delete_repo(self, repo: str) -> None:
        """Delete a repository, as its owner would; pulls from it (a fork) show `head.repo` null."""
        found = self._repo(repo)
        with self.world.lock:
            del self.world.repos[found.full_name.lower()]
            found.deleted = True
        shutil.rmtree(found.path)

    def protect_branch(self, repo: str, branch: str) -> None:
        """Protect `branch` as a classic rule requiring pull requests does: the app may neither
        push to it, force-push, delete it, nor move it through the git refs API."""
        found = self._repo(repo)
        if branch not in bare_repos.branches(found.path):
            raise KeyError(f"no branch {branch!r} in {repo}")
        with self.world.lock:
            found.protected_branches.add(branch)

    def set_permission(self, repo: str, login: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.world.user(login)
        self._repo(repo).roles[login] = role

    def add_issue(
        self, repo: str, title: str, body: str | None, author: str, labels: tuple[str, ...] = ()
    ) -> int:
        found = self._repo(repo)
        with self.world.lock:
            issue = Issue(
                self.world.new_id(),
                self.world.next_number(found),
                title,
                body,
                self.world.user(author),
            )
            found.issues[issue.number] = issue
        for label in labels:
            self.add_label(repo, label, issue=issue.number)
        return issue.number

    def add_label(
        self,
        repo: str,
        name: str,
        color: str = "ededed",
        description: str | None = None,
        issue: int | None = None,
    ) -> JSON:
        """Create the repo label if new; with `issue=`, also put it on that issue or pull."""
        found = self._repo(repo)
        with self.world.lock:
            label = next((x for x in found.labels.values() if x.name == name), None)
            if label is None:
                label = Label(self.world.new_id(), name, color, description)
                found.labels[name] = label
            if issue is not None and label not in found.issues[issue].labels:
                found.issues[issue].labels.append(label)
        return self.payloads.label(found, label)

    def remove_label(self, repo: str, name: str, issue: int) -> None:
        """Take the label off the issue, as a user clicking it away would."""
        found = self._repo(repo)
        with self.world.lock:
            labels = found.issues[issue].labels
            labels[:] = [label for label in labels if label.name != name]

    def add_comment(self, repo: str, issue: int, body: str, author: str) -> int:
        found = self._repo(repo)
        if issue not in found.issues:
            raise KeyError(f"no issue #{issue} in {repo}")
        comment = Comment(self.world.new_id(), issue, self.world.user(author), body)
        with self.world.lock:
            found.comments[comment.id] = comment
        return comment.id

    def commit_files(
        self, repo: str, branch: str, files: dict[str, str], message: str = "Change files"
    ) -> str:
        """Commit `files` on `branch` (created from the default branch if new); returns the sha."""
        found = self._repo(repo)
        start = branch if branch in bare_repos.branches(found.path) else found.default_branch
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            bare_repos.git("clone", "--quiet", "--branch", start, str(found.path), ".", cwd=work)
            for name, text in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_text(text)
            bare_repos.git("add", "--all", cwd=work)
            bare_repos.git("commit", "--quiet", "-m", message, cwd=work, env=bare_repos.AUTHOR)
            bare_repos.git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
            sha = bare_repos.git("rev-parse", "HEAD", cwd=work).strip()
        pull_refs.sync(self.world, found)
        return sha

    def add_pull(
        self,
        repo: str,
        head: str,
        title: str,
        body: str | None,
        author: str,
        base: str | None = None,
        draft: bool = False,
        head_repo: str | None = None,
        maintainer_can_modify: bool = False,
    ) -> int:
        """An open pull request from an existing branch; shares the issue number sequence.

        As in GitHub's API, `head` is `branch`, or `owner:branch` for a branch of `owner`'s
        fork (which may well be `main`); `head_repo` names that fork when it was renamed."""
        found = self._repo(repo)
        owner, _, branch = head.rpartition(":")
        fork = self._fork_of(found, owner, head_repo) if owner or head_repo else None
        if branch not in bare_repos.branches((fork or found).path):
            raise KeyError(
                f"no branch {branch!r} in {(fork or found).full_name}: commit_files first"
            )
        pull = PullRequest(
            self.world.new_id(), branch, base or found.default_branch, draft,
            head_repo=fork, maintainer_can_modify=maintainer_can_modify,
        )  # fmt: skip
        with self.world.lock:
            number = self.world.next_number(found)
            issue = Issue(self.world.new_id(), number, title, body, self.world.user(author))
            issue.pull = pull
            found.issues[number] = issue
        pull_refs.sync(self.world, fork or found)
        return number

    def _fork_of(self, repo: Repo, owner: str, name: str | None) -> Repo | None:
        """`owner`'s repository `name` (by default, any) in `repo`'s fork network; None when it
        is `repo` itself."""
        owner = owner or repo.owner.login
        for candidate in self.world.repos.values():
            same_network = candidate.source is repo.source
            if (
                same_network
                and candidate.owner.login.lower() == owner.lower()
                and (name is None or candidate.name.lower() == name.lower())
            ):
                return None if candidate is repo else candidate
        raise KeyError(f"{owner} has no fork of {repo.full_name}: add_fork first")

    def add_review(
        self,
        repo: str,
        pull: int,
        author: str,
        body: str,
        comments: list[dict[str, Any]] | None = None,
        state: str = "COMMENTED",
    ) -> int:
        """A submitted review; each of `comments` (`path`, `line`, `body`, optional `side`)
        starts a thread on that line of the pull's diff (ValueError when the diff lacks it)."""
        found = self._repo(repo)
        user = self.world.user(author)
        review = reviews.add_review(self.world, found, pull, user, body, state)
        for comment in comments or []:
            reviews.add_line_comment(
                self.world, found, review, user, comment["path"], comment["line"],
                comment["body"], comment.get("side", "RIGHT"),
            )  # fmt: skip
        return review.id

    def add_review_comment(
        self,
        repo: str,
        pull: int,
        author: str,
        path: str,
        line: int,
        body: str,
        in_reply_to: int | None = None,
    ) -> int:
        """A single review comment (its own COMMENTED review), or a reply in a thread."""
        found = self._repo(repo)
        user = self.world.user(author)
        if in_reply_to is not None:
            return reviews.add_reply(
                self.world, found, found.review_comments[in_reply_to], user, body
            ).id
        review = reviews.add_review(self.world, found, pull, user, "", "COMMENTED")
        return reviews.add_line_comment(self.world, found, review, user, path, line, body).id

    def resolve_thread(self, repo: str, comment: int, resolved: bool = True) -> None:
        """Mark the thread holding `comment` resolved (or not), as a reviewer would."""
        found = self._repo(repo)
        root = found.review_comments[comment].thread_root
        with self.world.lock:
            if resolved:
                found.resolved_threads.add(root)
            else:
                found.resolved_threads.discard(root)

    def add_check_suite(
        self,
        repo: str,
        head_sha: str,
        app: str = "ci-provider",
        app_name: str = "CI Provider",
        head_branch: str | None = None,
    ) -> int:
        """A check suite of another app (by slug, registered on first mention) on a commit or
        ref; it completes as its runs do. Returns its id."""
        found = self._repo(repo)
        owner = ci.other_app(self.world, app, app_name)
        sha = ci.commit_of(found, head_sha)
        return ci.add_check_suite(self.world, found, sha, owner, head_branch).id

    def add_check_run(
        self,
        repo: str,
        head_sha: str,
        name: str,
        conclusion: str | None = "failure",
        output: dict[str, str | None] | None = None,
        annotations: list[dict[str, Any]] | None = None,
        suite: int | None = None,
        app: str = "ci-provider",
        app_name: str = "CI Provider",
    ) -> int:
        """A check run by another app: completed with `conclusion`, in progress when None.
        `output` holds title, summary, text; an annotation needs path, start_line, message.
        Without `suite` it joins the app's suite for the commit. Returns its id."""
        found = self._repo(repo)
        if suite is not None:
            chosen = found.check_suites[suite]
        else:
            sha = ci.commit_of(found, head_sha)
            chosen = ci.suite_for(self.world, found, sha, ci.other_app(self.world, app, app_name))
        return ci.add_check_run(self.world, found, chosen, name, conclusion, output, annotations).id

    def add_workflow_run(
        self,
        repo: str,
        head_branch: str,
        jobs: list[dict[str, Any]],
        name: str = "CI",
        path: str = ".github/workflows/ci.yml",
        head_sha: str | None = None,
        event: str = "pull_request",
        actor: str = "alice",
    ) -> int:
        """A GitHub Actions run on the tip of `head_branch` (or `head_sha`) with its check suite;
        each job, `{name, conclusion, steps, log, output, annotations}`, is also a check run
        with the job's id. Its conclusion rolls up the jobs'. Returns the run's id."""
        found = self._repo(repo)
        sha = ci.commit_of(found, head_sha or head_branch)
        run = ci.add_workflow_run(
            self.world, found, sha, head_branch, name, jobs, path, event, actor
        )
        return run.id

    def set_webhook(self, app_id: int, url: str, secret: str) -> None:
        """Where and with which secret the emulator delivers the app's webhooks."""
        app = self.world.apps[app_id]
        with self.world.lock:
            app.webhook_url, app.webhook_secret = url, secret

    def manifest_code(self, manifest: dict[str, Any], owner: str | None = None) -> str:
        """The code GitHub hands the manifest's `redirect_url` once the user confirms it."""
        owner = owner or self.world.web_login
        if owner is None:
            raise ValueError("the browser is signed out: name the owner, or sign_in_browser")
        return manifest_flow.manifest_code(self.world, manifest, owner)

    def app_credentials(self, app_id: int) -> tuple[str, str]:
        """The app's OAuth `(client_id, client_secret)`, as its settings page shows them."""
        app = self.world.apps[app_id]
        return app.client_id, app.client_secret

    def set_callback_url(self, app_id: int, url: str, wildcard: bool = False) -> None:
        """The app's one OAuth callback URL, replacing any. A `redirect_uri` must equal it, or
        with `wildcard` may also be a subdomain or subdirectory of it."""
        app = self.world.apps[app_id]
        with self.world.lock:
            app.callback_urls = [CallbackURL(url, wildcard)]

    def sign_in_browser(self, login: str) -> None:
        """Sign the browser in on the web pages as `login` (it starts as `app-owner`)."""
        self.world.user(login)
        with self.world.lock:
            self.world.web_login = login

    def sign_out_browser(self) -> None:
        """Web pages that need a user now send the browser to `/login`."""
        with self.world.lock:
            self.world.web_login = None

    def user_token(self, app_id: int, login: str) -> str:
        """Mint the app's `ghu_` token for `login` directly, for tests that skip the web flow."""
        app = self.world.apps[app_id]
        return issue_user_token(self.world, app, self.world.user(login)).value

    def expire_user_token(self, token: str) -> None:
        """Make a user token expire now, as eight hours passing would."""
        with self.world.lock:
            self.world.user_tokens[token].expires_at = now()

    @property
    def content_limit(self) -> int | None:
        """Comments, pulls and review replies allowed per rolling minute; None (default): off."""
        return self.world.content_limit

    @content_limit.setter
    def content_limit(self, limit: int | None) -> None:
        with self.world.lock:
            self.world.content_limit = limit
            self.world.content_created = []

    def installation_token(self, installation_id: int) -> str:
        """Mint a token directly, for tests that do not exercise the JWT exchange."""
        installation = self.world.installations[installation_id]
        return issue_token(self.world, installation, None).value

    def clone_url(self, repo: str) -> str:
        return self.payloads.clone_url(self._repo(repo))

    # --- webhooks -----------------------------------------------------------------------------

    def webhook(self, event: str, action: str | None, **context: Any) -> JSON:
        """An octokit example of `event.action` with the emulator's objects substituted.

        Context: `repo` ("owner/name") and `sender` (login) always; `issue`, `pull` (numbers),
        `comment` (an issue or review comment id), `review` (id), `label` (name),
        `check_suite` and `workflow_run` (ids) as the event carries them.
        """
        return webhooks.build(self.world, self.payloads, event, action, **context)

    deliver = staticmethod(webhooks.deliver)
    deliver_async = staticmethod(webhooks.deliver_async)

    def send(self, event: str, payload: JSON, app_id: int | None = None) -> JSON:
        """Deliver to the app's webhook URL as GitHub does and record the delivery; returns it
        (`status_code` 0 when the receiver could not be reached). The app defaults to the one
        of the payload's installation."""
        if app_id is None:
            installation = self.world.installations[payload["installation"]["id"]]
            app_id = installation.app.id
        delivery = hook_deliveries.send(self.world, self.world.apps[app_id], event, payload)
        return self.payloads.delivery(delivery)

    # --- inspection ---------------------------------------------------------------------------

    def branches(self, repo: str) -> dict[str, str]:
        return bare_repos.branches(self._repo(repo).path)

    def file_at(self, repo: str, ref: str, path: str) -> str | None:
        return bare_repos.file_at(self._repo(repo).path, ref, path)

    def git_log(self, repo: str, ref: str) -> list[str]:
        """Commit subjects reachable from `ref`, newest first."""
        path = self._repo(repo).path
        return bare_repos.git("log", "--format=%s", ref, cwd=path).splitlines()

    def issue(self, repo: str, number: int) -> JSON:
        found = self._repo(repo)
        return self.payloads.issue(found, found.issues[number])

    def comments(self, repo: str, issue: int | None = None) -> list[JSON]:
        found = self._repo(repo)
        chosen = [c for c in found.comments.values() if issue in (None, c.issue_number)]
        return [self.payloads.comment(found, c) for c in chosen]

    def reactions(
        self, repo: str, issue: int | None = None, comment: int | None = None
    ) -> list[JSON]:
        """Reactions on one issue or one comment."""
        found = self._repo(repo)
        if comment is not None:
            reactions = found.comments[comment].reactions
        elif issue is not None:
            reactions = found.issues[issue].reactions
        else:
            raise ValueError("name an issue or a comment")
        return [self.payloads.reaction(r) for r in reactions]

    def pulls(self, repo: str) -> list[JSON]:
        """Every pull request: number, state, title, body, draft, head/base branch, reviewers."""
        found = self._repo(repo)
        return [
            {
                "number": issue.number,
                "state": issue.state,
                "title": issue.title,
                "body": issue.body,
                "draft": issue.pull.draft,
                "head": issue.pull.head_ref,
                "base": issue.pull.base_ref,
                "requested_reviewers": [u.login for u in issue.pull.requested_reviewers],
                "labels": [label.name for label in issue.labels],
            }
            for issue in found.issues.values()
            if issue.pull is not None
        ]

    def review_comments(self, repo: str, pull: int) -> list[JSON]:
        """The pull's review comments, replies included (`in_reply_to_id`), oldest first."""
        found = self._repo(repo)
        chosen = [c for thread in reviews.threads(found, pull) for c in thread]
        return [self.payloads.review_comment(found, c) for c in sorted(chosen, key=lambda c: c.id)]

    def reviews(self, repo: str, pull: int) -> list[JSON]:
        found = self._repo(repo)
        chosen = [r for r in found.reviews.values() if r.pull_number == pull]
        return [self.payloads.review(found, r) for r in chosen]

    def review_threads(self, repo: str, pull: int) -> list[JSON]:
        """Each thread: its GraphQL `id`, `resolved`, and its comment ids (root first)."""
        found = self._repo(repo)
        return [
            {
                "id": node_id("PullRequestReviewThread", thread[0].id),
                "resolved": thread[0].id in found.resolved_threads,
                "comments": [c.id for c in thread],
            }
            for thread in reviews.threads(found, pull)
        ]

    def check_runs(self, repo: str) -> list[JSON]:
        found = self._repo(repo)
        return [self.payloads.check_run(found, run) for run in found.check_runs.values()]

    def workflow_jobs(self, repo: str, run: int) -> list[JSON]:
        """The jobs of a workflow run, as GET .../actions/runs/{run_id}/jobs lists them."""
        found = self._repo(repo)
        return [
            self.payloads.job(found, found.jobs[job]) for job in found.workflow_runs[run].job_ids
        ]

    def commit_verified(self, repo: str, sha: str) -> bool:
        """Whether GitHub would show the commit as verified (made by an app through the API)."""
        return sha in self._repo(repo).verified_commits

    def deliveries(self, app_id: int | None = None) -> list[JSON]:
        """Recorded webhook deliveries, oldest first, with request and response."""
        chosen = [d for d in self.world.deliveries if app_id in (None, d.app_id)]
        return [self.payloads.delivery(d) for d in chosen]

    @property
    def requests(self) -> list[RequestRecord]:
        return list(self.world.requests)

    def _repo(self, full_name: str) -> Repo:
        repo = self.world.repo(full_name)
        if repo is None:
            raise KeyError(f"no repository {full_name}")
        return repo
