"""JSON shapes of GitHub's REST objects, filled from the emulator's state.

Every field GitHub's OpenAPI description marks required is present; URLs point at the emulator
(GHES style: the REST root is `/api/v3`, web and git URLs live at the root).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from tests.github_emulator import branch_protection
from tests.github_emulator.bare_repos import CommitInfo, TreeEntry
from tests.github_emulator.state import (
    App,
    CheckRun,
    CheckSuite,
    Comment,
    HookDelivery,
    Installation,
    Issue,
    Job,
    Label,
    PullRequest,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    Token,
    User,
    WorkflowRun,
)

JSON = dict[str, Any]

PERMISSION_OF_ROLE = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
"""The legacy `permission` GitHub reports beside `role_name`."""


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


class Payloads:
    """Renders state objects as GitHub renders them, with URLs rooted at the emulator."""

    def __init__(self, web_url: str) -> None:
        self.web = web_url
        self.api = f"{web_url}/api/v3"

    def user(self, user: User) -> JSON:
        api = f"{self.api}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id("User", user.id),
            "avatar_url": f"{self.web}/avatars/u/{user.id}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.web}/{user.login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def private_user(self, user: User, public_repos: int, private_repos: int) -> JSON:
        """The `private-user` shape GET /user answers a user's own token with."""
        return {
            **self.user(user),
            "user_view_type": "private",
            "name": None,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": public_repos,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": timestamp(user.created_at),
            "updated_at": timestamp(user.created_at),
            "private_gists": 0,
            "total_private_repos": private_repos,
            "owned_private_repos": private_repos,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
        }

    def collaborator(self, user: User, role: str) -> JSON:
        return {**self.user(user), "permissions": permissions(role), "role_name": role}

    def app(self, app: App) -> JSON:
        return {
            "id": app.id,
            "slug": app.slug,
            "client_id": app.client_id,
            "node_id": node_id("Integration", app.id),
            "owner": self.user(app.owner),
            "name": app.name or app.slug,
            "description": "",
            "external_url": f"{self.web}/apps/{app.slug}",
            "html_url": f"{self.web}/apps/{app.slug}",
            "created_at": timestamp(app.created_at),
            "updated_at": timestamp(app.created_at),
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "installations_count": 1,
        }

    def installation(self, installation: Installation) -> JSON:
        account = self.user(installation.account)
        # GitHub's description of GET /app/installations types `account` as allOf(user,
        # enterprise); these enterprise fields keep that schema satisfied.
        account.update(
            name=installation.account.login,
            slug=installation.account.login.lower(),
            created_at=timestamp(installation.created_at),
            updated_at=timestamp(installation.created_at),
        )
        return {
            "id": installation.id,
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": f"{self.api}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/settings/installations/{installation.id}",
            "app_id": installation.app.id,
            "app_slug": installation.app.slug,
            "target_id": installation.account.id,
            "target_type": installation.account.type,
            "permissions": dict(installation.permissions),
            "events": ["issues", "issue_comment", "pull_request_review_comment"],
            "created_at": timestamp(installation.created_at),
            "updated_at": timestamp(installation.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def token(self, token: Token, repos: list[Repo] | None) -> JSON:
        body: JSON = {
            "token": token.value,
            "expires_at": timestamp(token.expires_at),
            "permissions": dict(token.installation.permissions),
            "repository_selection": "all" if repos is None else "selected",
        }
        if repos is not None:
            body["repositories"] = [self.repository(repo) for repo in repos]
        return body

    def repository(self, repo: Repo, role: str | None = None) -> JSON:
        """The `repository` shape; `full_repository` adds the fields of GET /repos/{o}/{r}.
        With a `role`, the `permissions` the asking user holds (user tokens only)."""
        api = f"{self.api}/repos/{repo.full_name}"
        urls = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        open_issues = sum(1 for issue in repo.issues.values() if issue.state == "open")
        forks = sum(1 for fork in repo.forks if not fork.deleted)
        body: JSON = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user(repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"{self.web}/{repo.full_name}",
            "description": None,
            "fork": repo.parent is not None,
            "url": api,
            **{name: api + suffix for name, suffix in urls.items()},
            "clone_url": self.clone_url(repo),
            "git_url": f"git://127.0.0.1/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "svn_url": f"{self.web}/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "license": None,
            "forks": forks,
            "forks_count": forks,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": repo.default_branch,
            "open_issues": open_issues,
            "open_issues_count": open_issues,
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "pushed_at": timestamp(repo.created_at),
            "created_at": timestamp(repo.created_at),
            "updated_at": timestamp(repo.created_at),
            "allow_forking": bool(repo.forks) or repo.parent is not None,
            "web_commit_signoff_required": False,
        }
        if role is not None:
            body["permissions"] = permissions(role)
        return body

    def full_repository(self, repo: Repo, role: str | None = None) -> JSON:
        """The `full-repository` shape; a fork's names its `parent` and the network's `source`.
        With a `role`, the `permissions` the asking user holds (user tokens only)."""
        body = {
            **self.repository(repo, role),
            "network_count": network_size(repo.source),
            "subscribers_count": 0,
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "delete_branch_on_merge": False,
        }
        if repo.parent is not None:
            body["parent"] = self.repository(repo.parent)
            body["source"] = self.repository(repo.source)
        return body

    def clone_url(self, repo: Repo) -> str:
        return f"{self.web}/{repo.full_name}.git"

    def label(self, repo: Repo, label: Label) -> JSON:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.api}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": False,
            "description": label.description,
            # Newer API versions (githubkit's default) require these two.
            "archived_at": None,
            "archived_by": None,
        }

    def reactions_summary(self, url: str, reactions: list[Reaction]) -> JSON:
        summary: JSON = {"url": f"{url}/reactions", "total_count": len(reactions)}
        for content in REACTIONS:
            summary[content] = sum(1 for reaction in reactions if reaction.content == content)
        return summary

    def issue(self, repo: Repo, issue: Issue) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        comments = [c for c in repo.comments.values() if c.issue_number == issue.number]
        body: JSON = {
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "url": api,
            "repository_url": f"{self.api}/repos/{repo.full_name}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": self.issue_html_url(repo, issue),
            "number": issue.number,
            "state": issue.state,
            "title": issue.title,
            "body": issue.body,
            "user": self.user(issue.user),
            "labels": [self.label(repo, label) for label in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(comments),
            "closed_at": timestamp(issue.closed_at),
            "created_at": timestamp(issue.created_at),
            "updated_at": timestamp(issue.updated_at),
            "closed_by": None,
            "author_association": association(repo, issue.user),
            "reactions": self.reactions_summary(api, issue.reactions),
        }
        if issue.state == "closed" or issue.state_reason == "reopened":
            # Left out otherwise: the description's enum has no null.
            body["state_reason"] = issue.state_reason or "completed"
        if issue.pull is not None:
            pulls = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
            html = self.issue_html_url(repo, issue)
            body["pull_request"] = {
                "url": pulls,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": None,
            }
            body["draft"] = issue.pull.draft
        return body

    def issue_html_url(self, repo: Repo, issue: Issue) -> str:
        kind = "issues" if issue.pull is None else "pull"
        return f"{self.web}/{repo.full_name}/{kind}/{issue.number}"

    def comment(self, repo: Repo, comment: Comment) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/issues/comments/{comment.id}"
        issue = repo.issues[comment.issue_number]
        return {
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "url": api,
            "html_url": f"{self.issue_html_url(repo, issue)}#issuecomment-{comment.id}",
            "issue_url": f"{self.api}/repos/{repo.full_name}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": self.user(comment.user),
            "created_at": timestamp(comment.created_at),
            "updated_at": timestamp(comment.updated_at),
            "author_association": association(repo, comment.user),
            "reactions": self.reactions_summary(api, comment.reactions),
        }

    def reaction(self, reaction: Reaction) -> JSON:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": timestamp(reaction.created_at),
        }

    def pull_simple(self, repo: Repo, issue: Issue, head_sha: str, base_sha: str) -> JSON:
        """The `pull-request-simple` shape (lists, review requests)."""
        pull = issue.pull
        assert pull is not None
        api = f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}"
        issue_api = f"{self.api}/repos/{repo.full_name}/issues/{issue.number}"
        html = self.issue_html_url(repo, issue)
        statuses = f"{self.api}/repos/{repo.full_name}/statuses/{head_sha}"
        return {
            "url": api,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{self.api}/repos/{repo.full_name}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": statuses,
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "labels": [self.label(repo, label) for label in issue.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": timestamp(issue.created_at),
            "updated_at": timestamp(issue.updated_at),
            "closed_at": timestamp(issue.closed_at),
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [self.user(user) for user in pull.requested_reviewers],
            "requested_teams": [],
            "head": self.pull_head(repo, issue, head_sha),
            "base": self.pull_end(repo, pull.base_ref, base_sha),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {
                    "href": f"{self.api}/repos/{repo.full_name}/pulls/comments{{/number}}"
                },
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": association(repo, issue.user),
            "auto_merge": None,
            "draft": pull.draft,
        }

    def pull(self, repo: Repo, issue: Issue, head_sha: str, base_sha: str) -> JSON:
        """The full `pull-request` shape (GET, POST, PATCH of one pull)."""
        comments = [c for c in repo.comments.values() if c.issue_number == issue.number]
        return {
            **self.pull_simple(repo, issue, head_sha, base_sha),
            "merged": False,
            "mergeable": None,
            "rebaseable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": len(comments),
            "review_comments": sum(
                1 for c in repo.review_comments.values() if c.pull_number == issue.number
            ),
            "maintainer_can_modify": pull_of(issue).maintainer_can_modify,
            "commits": 1,
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }

    def pull_end(self, repo: Repo, ref: str, sha: str) -> JSON:
        return {
            "label": f"{repo.owner.login}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repository(repo),
        }

    def pull_head(self, repo: Repo, issue: Issue, sha: str) -> JSON:
        """The head: a branch of the repository or of a fork; once the fork is deleted, its
        `repo` is null while label, ref, user and sha stay as they were."""
        pull = pull_of(issue)
        fork = pull.head_repo
        if fork is None:
            return self.pull_end(repo, pull.head_ref, sha)
        head = self.pull_end(fork, pull.head_ref, sha)
        if fork.deleted:
            head["repo"] = None
        return head

    def git_ref(self, repo: Repo, ref: str, sha: str) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/git"
        return {
            "ref": ref,
            "node_id": node_id("Ref", repo.id),
            "url": f"{api}/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{api}/commits/{sha}"},
        }

    def branch(self, repo: Repo, name: str, commit: CommitInfo) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}"
        return {
            "name": name,
            "commit": self.commit(repo, commit),
            "_links": {
                "self": f"{api}/branches/{name}",
                "html": f"{self.web}/{repo.full_name}/tree/{name}",
            },
            "protected": name in repo.protected_branches,
            "protection": branch_protection.protection(repo, name),
            "protection_url": f"{api}/branches/{name}/protection",
        }

    def commit(self, repo: Repo, commit: CommitInfo) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}"
        return {
            "sha": commit.sha,
            "node_id": node_id("Commit", repo.id),
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"{self.web}/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{commit.sha}",
                "author": {
                    "name": commit.author_name,
                    "email": commit.author_email,
                    "date": commit.author_date,
                },
                "committer": {
                    "name": commit.committer_name,
                    "email": commit.committer_email,
                    "date": commit.committer_date,
                },
                "message": commit.message,
                "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
                "comment_count": 0,
            },
            # Commits by no GitHub account: the description's `empty-object` choice.
            "author": {},
            "committer": {},
            "parents": [
                {"sha": parent, "url": f"{api}/commits/{parent}"} for parent in commit.parents
            ],
        }

    def review_comment(self, repo: Repo, comment: ReviewComment) -> JSON:
        """The `pull-request-review-comment` shape (also valid as `review-comment`)."""
        api = f"{self.api}/repos/{repo.full_name}/pulls/comments/{comment.id}"
        pull_api = f"{self.api}/repos/{repo.full_name}/pulls/{comment.pull_number}"
        html = f"{self.web}/{repo.full_name}/pull/{comment.pull_number}#discussion_r{comment.id}"
        body: JSON = {
            "url": api,
            "pull_request_review_id": comment.review_id,
            "id": comment.id,
            "node_id": node_id("PullRequestReviewComment", comment.id),
            "diff_hunk": comment.diff_hunk,
            "path": comment.path,
            "position": comment.position,
            "original_position": comment.position,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self.user(comment.user),
            "body": comment.body,
            "created_at": timestamp(comment.created_at),
            "updated_at": timestamp(comment.updated_at),
            "html_url": html,
            "pull_request_url": pull_api,
            "author_association": association(repo, comment.user),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "pull_request": {"href": pull_api},
            },
            "start_line": None,
            "original_start_line": None,
            # `start_side` is left out: single-line comments have none, and the description's
            # enum has no null.
            "line": comment.line,
            "original_line": comment.line,
            "side": comment.side,
            "subject_type": "line",
            "reactions": self.reactions_summary(api, comment.reactions),
        }
        if comment.in_reply_to is not None:
            body["in_reply_to_id"] = comment.in_reply_to
        return body

    def review(self, repo: Repo, review: Review) -> JSON:
        pull_api = f"{self.api}/repos/{repo.full_name}/pulls/{review.pull_number}"
        html = (
            f"{self.web}/{repo.full_name}/pull/{review.pull_number}#pullrequestreview-{review.id}"
        )
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pull_api,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_api}},
            "submitted_at": timestamp(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": association(repo, review.user),
        }

    def check_run(self, repo: Repo, run: CheckRun) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/check-runs/{run.id}"
        html = f"{self.web}/{repo.full_name}/runs/{run.id}"
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": node_id("CheckRun", run.id),
            "external_id": run.external_id or "",
            "url": api,
            "html_url": html,
            "details_url": run.details_url or html,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": timestamp(run.started_at),
            "completed_at": timestamp(run.completed_at),
            "output": {
                **run.output,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{api}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": suite_of(run)},
            "app": self.app(run.app),
            "pull_requests": [],
        }

    def annotation(self, repo: Repo, run: CheckRun, annotation: JSON) -> JSON:
        blob = f"{self.web}/{repo.full_name}/blob/{run.head_sha}/{annotation['path']}"
        defaults = {"start_column": None, "end_column": None, "title": None, "raw_details": None}
        return {"annotation_level": "failure", **defaults, **annotation, "blob_href": blob}

    def simple_commit(self, commit: CommitInfo) -> JSON:
        return {
            "id": commit.sha,
            "tree_id": commit.tree,
            "message": commit.message,
            "timestamp": commit.committer_date,
            "author": {"name": commit.author_name, "email": commit.author_email},
            "committer": {"name": commit.committer_name, "email": commit.committer_email},
        }

    def pull_minimal(self, repo: Repo, issue: Issue, head_sha: str, base_sha: str) -> JSON:
        """A pull as check suites and workflow runs list it."""
        pull = pull_of(issue)
        head_repo = pull.head_repo or repo

        def end(at: Repo, ref: str, sha: str) -> JSON:
            api = f"{self.api}/repos/{at.full_name}"
            return {"ref": ref, "sha": sha, "repo": {"id": at.id, "url": api, "name": at.name}}

        return {
            "id": pull.id,
            "number": issue.number,
            "url": f"{self.api}/repos/{repo.full_name}/pulls/{issue.number}",
            "head": end(head_repo, pull.head_ref, head_sha),
            "base": end(repo, pull.base_ref, base_sha),
        }

    def check_suite(
        self, repo: Repo, suite: CheckSuite, commit: CommitInfo, pulls: list[JSON]
    ) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/check-suites/{suite.id}"
        runs = [run for run in repo.check_runs.values() if run.suite_id == suite.id]
        return {
            "id": suite.id,
            "node_id": node_id("CheckSuite", suite.id),
            "head_branch": suite.head_branch,
            "head_sha": suite.head_sha,
            "status": suite.status,
            "conclusion": suite.conclusion,
            "url": api,
            "before": commit.parents[0] if commit.parents else "0" * 40,
            "after": suite.head_sha,
            "pull_requests": pulls,
            "app": self.app(suite.app),
            "repository": self.repository(repo),
            "created_at": timestamp(suite.created_at),
            "updated_at": timestamp(suite.updated_at),
            "head_commit": self.simple_commit(commit),
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{api}/check-runs",
            "rerequestable": True,
            "runs_rerequestable": True,
        }

    def workflow_run(
        self, repo: Repo, run: WorkflowRun, commit: CommitInfo, pulls: list[JSON]
    ) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}"
        url = f"{api}/actions/runs/{run.id}"
        workflow_id = workflow_id_of(run)
        return {
            "id": run.id,
            "name": run.name,
            "node_id": node_id("WorkflowRun", run.id),
            "check_suite_id": run.suite_id,
            "check_suite_node_id": node_id("CheckSuite", run.suite_id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": run.path,
            "display_title": commit.message.splitlines()[0] if commit.message else run.name,
            "run_number": run.run_number,
            "run_attempt": 1,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": workflow_id,
            "url": url,
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": pulls,
            "created_at": timestamp(run.created_at),
            "updated_at": timestamp(run.updated_at),
            "run_started_at": timestamp(run.created_at),
            "actor": self.user(run.actor),
            "triggering_actor": self.user(run.actor),
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "check_suite_url": f"{api}/check-suites/{run.suite_id}",
            "artifacts_url": f"{url}/artifacts",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{api}/actions/workflows/{workflow_id}",
            "head_commit": self.simple_commit(commit),
            "repository": self.repository(repo),
            "head_repository": self.repository(repo),
        }

    def job(self, repo: Repo, job: Job) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}"
        run = repo.workflow_runs[job.run_id]
        check = repo.check_runs[job.id]
        return {
            "id": job.id,
            "run_id": run.id,
            "run_url": f"{api}/actions/runs/{run.id}",
            "run_attempt": 1,
            "node_id": node_id("CheckRun", job.id),
            "head_sha": run.head_sha,
            "url": f"{api}/actions/jobs/{job.id}",
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
            "status": check.status,
            "conclusion": check.conclusion,
            "created_at": timestamp(run.created_at),
            "started_at": timestamp(check.started_at or run.created_at),
            "completed_at": timestamp(check.completed_at),
            "name": check.name,
            "steps": job.steps,
            "check_run_url": f"{api}/check-runs/{job.id}",
            "labels": ["ubuntu-latest"],
            "runner_id": 1,
            "runner_name": "GitHub Actions 1",
            "runner_group_id": 2,
            "runner_group_name": "GitHub Actions",
            "workflow_name": run.name,
            "head_branch": run.head_branch,
        }

    def blob(self, repo: Repo, sha: str) -> JSON:
        return {"url": f"{self.api}/repos/{repo.full_name}/git/blobs/{sha}", "sha": sha}

    def tree(self, repo: Repo, sha: str, entries: list[TreeEntry]) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/git"
        rendered = []
        for entry in entries:
            item: JSON = {"path": entry.path, "mode": entry.mode, "type": entry.type}
            item["sha"] = entry.sha
            if entry.size is not None:
                item["size"] = entry.size
            item["url"] = f"{api}/{entry.type}s/{entry.sha}"
            rendered.append(item)
        return {"sha": sha, "url": f"{api}/trees/{sha}", "tree": rendered, "truncated": False}

    def git_commit(self, repo: Repo, commit: CommitInfo, verified: bool) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}/git"
        html = f"{self.web}/{repo.full_name}/commit"
        return {
            "sha": commit.sha,
            "node_id": node_id("Commit", repo.id),
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"{html}/{commit.sha}",
            "author": {
                "name": commit.author_name,
                "email": commit.author_email,
                "date": commit.author_date,
            },
            "committer": {
                "name": commit.committer_name,
                "email": commit.committer_email,
                "date": commit.committer_date,
            },
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{api}/trees/{commit.tree}"},
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/{p}"}
                for p in commit.parents
            ],
            "verification": verification(commit, verified),
        }

    def content_file(self, repo: Repo, path: str, ref: str, sha: str, data: bytes) -> JSON:
        api = f"{self.api}/repos/{repo.full_name}"
        url = f"{api}/contents/{path}?ref={ref}"
        html = f"{self.web}/{repo.full_name}/blob/{ref}/{path}"
        git_url = f"{api}/git/blobs/{sha}"
        encoded = base64.b64encode(data).decode()
        # GitHub wraps the base64 at 60 characters, newline-terminated.
        wrapped = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": wrapped,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html,
            "download_url": f"{self.web}/raw/{repo.full_name}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html},
        }

    def delivery_item(self, delivery: HookDelivery) -> JSON:
        return {
            "id": delivery.id,
            "guid": delivery.guid,
            "delivered_at": timestamp(delivery.delivered_at),
            "redelivery": delivery.redelivery,
            "duration": delivery.duration,
            "status": delivery.status,
            "status_code": delivery.status_code,
            "event": delivery.event,
            "action": delivery.action,
            "installation_id": delivery.installation_id,
            "repository_id": delivery.repository_id,
            "throttled_at": None,
        }

    def delivery(self, delivery: HookDelivery) -> JSON:
        return {
            **self.delivery_item(delivery),
            "url": delivery.url,
            "request": {"headers": delivery.request_headers, "payload": delivery.request_payload},
            "response": {"headers": delivery.response_headers, "payload": delivery.response_body},
        }


def permissions(role: str) -> JSON:
    """The `permissions` object of a collaborator or of a repository seen by a user."""
    permission = PERMISSION_OF_ROLE[role]
    return {
        "admin": permission == "admin",
        "maintain": role in ("admin", "maintain"),
        "push": permission in ("admin", "write"),
        "triage": role in ("admin", "maintain", "write", "triage"),
        "pull": permission != "none",
    }


def suite_of(run: CheckRun) -> int:
    """The run's check suite; runs made through the API share one per app and commit."""
    if run.suite_id is not None:
        return run.suite_id
    return int(run.head_sha[:7], 16) * 100 + run.app.id % 100


def workflow_id_of(run: WorkflowRun) -> int:
    """A stable id per workflow file, as GitHub gives each workflow one."""
    return sum(ord(char) * (index + 1) for index, char in enumerate(run.path)) + 100000


def pull_of(issue: Issue) -> PullRequest:
    assert issue.pull is not None, f"#{issue.number} is an issue, not a pull request"
    return issue.pull


def network_size(repo: Repo) -> int:
    """Forks of `repo` and of its forks, deleted ones left out."""
    live = [fork for fork in repo.forks if not fork.deleted]
    return len(live) + sum(network_size(fork) for fork in live)


def verification(commit: CommitInfo, verified: bool) -> JSON:
    """GitHub signs commits apps make through the API with its own key and reports them valid."""
    if not verified:
        return {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        }
    return {
        "verified": True,
        "reason": "valid",
        "signature": "-----BEGIN PGP SIGNATURE-----\n\nemulator\n-----END PGP SIGNATURE-----\n",
        "payload": f"tree {commit.tree}\n"
        + "".join(f"parent {p}\n" for p in commit.parents)
        + f"\n{commit.message}\n",
        "verified_at": commit.committer_date,
    }


REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
"""The reaction contents GitHub accepts; each is also a count in a reactions summary."""


def association(repo: Repo, user: User) -> str:
    if user.login == repo.owner.login:
        return "OWNER"
    role = repo.role_of(user.login)
    return "COLLABORATOR" if role != "none" else "NONE"
