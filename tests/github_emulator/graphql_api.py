"""GitHub's GraphQL endpoint, `POST /api/graphql`, with what resolving a review thread takes:
`repository.pullRequest.reviewThreads` and the `(un)resolveReviewThread` mutations."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.github_emulator import reviews
from tests.github_emulator.auth import can_access, installation_token
from tests.github_emulator.errors import GitHubError
from tests.github_emulator.graphql_parser import Field, GraphQLError, parse, substitute
from tests.github_emulator.payloads import node_id
from tests.github_emulator.state import Repo, ReviewComment, Token, World

MAX_PAGE = 100


class FieldError(Exception):
    """A field that resolves to null with an error (`type` as GitHub reports it)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Resolver:
    resolve: Callable[[dict[str, Any]], Any]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """A GraphQL object: its type name and a resolver per field."""

    typename: str
    fields: dict[str, Resolver]


def scalar(value: Any) -> Resolver:
    return Resolver(lambda _: value)


@dataclass(frozen=True)
class Context:
    world: World
    token: Token

    def repo(self, owner: str, name: str) -> Repo:
        repo = self.world.repo(f"{owner}/{name}")
        if repo is None or not can_access(self.token, repo):
            message = f"Could not resolve to a Repository with the name '{owner}/{name}'."
            raise FieldError("NOT_FOUND", message)
        return repo

    def thread(self, thread_id: str) -> tuple[Repo, list[ReviewComment]]:
        for repo in self.world.repos.values():
            if not can_access(self.token, repo):
                continue
            for comments in threads_of(repo):
                if thread_node_id(comments[0]) == thread_id:
                    return repo, comments
        message = f"Could not resolve to a node with the global id of '{thread_id}'"
        raise FieldError("NOT_FOUND", message)


def threads_of(repo: Repo) -> list[list[ReviewComment]]:
    numbers = sorted({c.pull_number for c in repo.review_comments.values()})
    return [thread for number in numbers for thread in reviews.threads(repo, number)]


def thread_node_id(root: ReviewComment) -> str:
    return node_id("PullRequestReviewThread", root.id)


def connection(name: str, items: list[Node]) -> Resolver:
    """A `first`-paginated connection, refusing unbounded pages as GitHub does."""

    def page(arguments: dict[str, Any]) -> Node:
        first = arguments.get("first")
        if not isinstance(first, int):
            message = (
                "You must provide a `first` or `last` value to properly paginate "
                f"the `{name}` connection."
            )
            raise GraphQLError(message)
        if not 0 <= first <= MAX_PAGE:
            message = (
                f"Requesting {first} records on the `{name}` connection exceeds "
                f"the `first` limit of {MAX_PAGE} records."
            )
            raise GraphQLError(message)
        after = arguments.get("after")
        start = int(after) if isinstance(after, str) and after.isdigit() else 0
        chosen = items[start : start + first]
        info = Node(
            "PageInfo",
            {
                "hasNextPage": scalar(start + first < len(items)),
                "endCursor": scalar(str(start + len(chosen)) if chosen else None),
            },
        )
        fields = {
            "nodes": scalar(chosen),
            "totalCount": scalar(len(items)),
            "pageInfo": scalar(info),
        }
        return Node(f"{name}Connection", fields)

    return Resolver(page, optional=("first", "after"))


def query_root(context: Context) -> Node:
    def repository(arguments: dict[str, Any]) -> Node:
        return repository_node(context.repo(arguments["owner"], arguments["name"]))

    return Node("Query", {"repository": Resolver(repository, required=("owner", "name"))})


def repository_node(repo: Repo) -> Node:
    def pull_request(arguments: dict[str, Any]) -> Node:
        issue = repo.issues.get(arguments["number"])
        if issue is None or issue.pull is None:
            message = (
                f"Could not resolve to a PullRequest with the number of {arguments['number']}."
            )
            raise FieldError("NOT_FOUND", message)
        threads = [thread_node(repo, thread) for thread in reviews.threads(repo, issue.number)]
        return Node(
            "PullRequest",
            {
                "id": scalar(node_id("PullRequest", issue.pull.id)),
                "number": scalar(issue.number),
                "title": scalar(issue.title),
                "reviewThreads": connection("PullRequestReviewThread", threads),
            },
        )

    return Node(
        "Repository",
        {
            "id": scalar(node_id("Repository", repo.id)),
            "nameWithOwner": scalar(repo.full_name),
            "pullRequest": Resolver(pull_request, required=("number",)),
        },
    )


def thread_node(repo: Repo, comments: list[ReviewComment]) -> Node:
    root = comments[0]
    nodes = [comment_node(comment) for comment in comments]
    return Node(
        "PullRequestReviewThread",
        {
            "id": scalar(thread_node_id(root)),
            "isResolved": Resolver(lambda _: root.id in repo.resolved_threads),
            "path": scalar(root.path),
            "line": scalar(root.line),
            "comments": connection("PullRequestReviewComment", nodes),
        },
    )


def comment_node(comment: ReviewComment) -> Node:
    author = Node(
        "Bot" if comment.user.type == "Bot" else "User", {"login": scalar(comment.user.login)}
    )
    return Node(
        "PullRequestReviewComment",
        {
            "id": scalar(node_id("PullRequestReviewComment", comment.id)),
            "databaseId": scalar(comment.id),
            "body": scalar(comment.body),
            "author": scalar(author),
        },
    )


def mutation_root(context: Context) -> Node:
    def change(resolved: bool) -> Resolver:
        def mutate(arguments: dict[str, Any]) -> Node:
            given = arguments["input"]
            if not isinstance(given, dict) or not isinstance(given.get("threadId"), str):
                raise GraphQLError("Argument 'input' on Field is missing required field threadId")
            repo, comments = context.thread(given["threadId"])
            if context.token.installation.permissions.get("pull_requests") != "write":
                raise FieldError("FORBIDDEN", "Resource not accessible by integration")
            with context.world.lock:
                if resolved:
                    repo.resolved_threads.add(comments[0].id)
                else:
                    repo.resolved_threads.discard(comments[0].id)
            fields = {
                "thread": scalar(thread_node(repo, comments)),
                "clientMutationId": scalar(given.get("clientMutationId")),
            }
            return Node("ResolveReviewThreadPayload", fields)

        return Resolver(mutate, required=("input",))

    return Node(
        "Mutation",
        {"resolveReviewThread": change(True), "unresolveReviewThread": change(False)},
    )


class Execution:
    """Walks the selections over the nodes, collecting field errors with their paths."""

    def __init__(self, variables: dict[str, Any], declared: dict[str, tuple[str, Any]]) -> None:
        self.variables = variables
        self.declared = declared
        self.errors: list[dict[str, Any]] = []

    def object(self, node: Node, selections: list[Field], path: list[Any]) -> dict[str, Any]:
        return {field.key: self.field(node, field, [*path, field.key]) for field in selections}

    def field(self, node: Node, field: Field, path: list[Any]) -> Any:
        if field.name == "__typename":
            return node.typename
        resolver = node.fields.get(field.name)
        if resolver is None:
            raise GraphQLError(f"Field '{field.name}' doesn't exist on type '{node.typename}'")
        arguments = {
            name: substitute(value, self.variables, self.declared)
            for name, value in field.arguments.items()
        }
        check_arguments(field, resolver, arguments)
        try:
            value = resolver.resolve(arguments)
        except FieldError as error:
            self.errors.append({"type": error.kind, "path": path, "message": error.message})
            return None
        return self.value(field, value, path)

    def value(self, field: Field, value: Any, path: list[Any]) -> Any:
        if isinstance(value, list):
            return [self.value(field, item, [*path, i]) for i, item in enumerate(value)]
        if isinstance(value, Node):
            if field.selections is None:
                message = (
                    f"Field must have selections (field '{field.name}' returns "
                    f"{value.typename} but has no selections."
                )
                raise GraphQLError(message)
            return self.object(value, field.selections, path)
        if field.selections is not None:
            raise GraphQLError(f"Selections can't be made on scalars (field '{field.name}')")
        return value


def check_arguments(field: Field, resolver: Resolver, arguments: dict[str, Any]) -> None:
    for name in arguments:
        if name not in resolver.required + resolver.optional:
            raise GraphQLError(f"Field '{field.name}' doesn't accept argument '{name}'")
    missing = [name for name in resolver.required if arguments.get(name) is None]
    if missing:
        names = ", ".join(missing)
        raise GraphQLError(f"Field '{field.name}' is missing required arguments: {names}")


def execute(context: Context, document: object, variables: object) -> dict[str, Any]:
    """The response body for one request: `{"data": ...}` and/or `{"errors": [...]}`."""
    if not isinstance(document, str):
        return {
            "errors": [{"message": "A query attribute must be specified and must be a string."}]
        }
    try:
        operation = parse(document)
        run = Execution(variables if isinstance(variables, dict) else {}, operation.variables)
        root = query_root(context) if operation.kind == "query" else mutation_root(context)
        data = run.object(root, operation.selections, [])
    except GraphQLError as error:
        return {"errors": [{"message": str(error)}]}
    return {"data": data, "errors": run.errors} if run.errors else {"data": data}


async def graphql(request: Request) -> Response:
    world: World = request.app.state.world
    token = installation_token(world, request.headers.get("authorization"))
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return JSONResponse(execute(Context(world, token), body.get("query"), body.get("variables")))


routes = [Route("/api/graphql", graphql, methods=["POST"])]
