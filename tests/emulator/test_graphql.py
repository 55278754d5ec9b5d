"""The GraphQL endpoint: review threads of a pull, resolving one, and GraphQL's error shape."""

from __future__ import annotations

from typing import Any

import httpx

from tests.emulator.conftest import Hub

THREADS = """
query Threads($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      reviewThreads(first: 100) {
        nodes { id isResolved comments(first: 100) { nodes { databaseId } } }
      }
    }
  }
}
"""
RESOLVE = """
mutation Resolve($threadId: ID!) {
  resolveReviewThread(input: {threadId: $threadId}) { thread { id isResolved } }
}
"""


def graphql(hub: Hub, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
    token = token or hub.emu.installation_token(hub.installation_id)
    return httpx.post(
        f"{hub.emu.web_url}/api/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"bearer {token}"},
    )


def pull_with_two_threads(hub: Hub) -> tuple[int, list[int]]:
    hub.emu.commit_files(hub.repo, "qwen-fix/1", {"src/app.py": "a = 1\nb = 20\nc = 30\n"})
    number = hub.emu.add_pull(hub.repo, "qwen-fix/1", "Fix", None, "alice")
    first = hub.emu.add_review_comment(hub.repo, number, "alice", "src/app.py", 2, "Why?")
    reply = hub.emu.add_review_comment(hub.repo, number, "bob", "", 0, "Agreed", in_reply_to=first)
    second = hub.emu.add_review_comment(hub.repo, number, "alice", "src/app.py", 3, "And this?")
    return number, [first, reply, second]


def test_threads_are_listed_and_one_is_resolved(hub: Hub) -> None:
    number, (first, reply, second) = pull_with_two_threads(hub)
    hub.emu.resolve_thread(hub.repo, second)
    # githubkit maps the GHES REST root /api/v3 to /api/graphql by itself.
    data = hub.installed.graphql(THREADS, {"owner": "octo", "name": "hello", "number": number})
    threads = data["repository"]["pullRequest"]["reviewThreads"]["nodes"]
    assert [[c["databaseId"] for c in t["comments"]["nodes"]] for t in threads] == [
        [first, reply],
        [second],
    ]
    assert [t["isResolved"] for t in threads] == [False, True]

    resolved = graphql(hub, RESOLVE, threadId=threads[0]["id"])
    assert resolved.status_code == 200
    assert resolved.json() == {
        "data": {"resolveReviewThread": {"thread": {"id": threads[0]["id"], "isResolved": True}}}
    }
    assert [t["resolved"] for t in hub.emu.review_threads(hub.repo, number)] == [True, True]


def test_aliases_typename_and_inline_arguments(hub: Hub) -> None:
    number, (first, _, _) = pull_with_two_threads(hub)
    query = f"""{{ repo: repository(owner: "octo", name: "hello") {{ __typename
        pr: pullRequest(number: {number}) {{ reviewThreads(first: 1) {{ totalCount
          pageInfo {{ hasNextPage }} nodes {{ comments(first: 1) {{ nodes {{ databaseId }} }} }}
    }} }} }} }}"""
    data = graphql(hub, query).json()["data"]
    threads = data["repo"]["pr"]["reviewThreads"]
    assert data["repo"]["__typename"] == "Repository"
    assert (threads["totalCount"], threads["pageInfo"]["hasNextPage"]) == (2, True)
    assert threads["nodes"] == [{"comments": {"nodes": [{"databaseId": first}]}}]


def test_graphql_errors_have_graphql_shape(hub: Hub) -> None:
    number, _ = pull_with_two_threads(hub)
    unknown = graphql(hub, "{ viewer { login } }")
    assert unknown.status_code == 200
    assert unknown.json() == {
        "errors": [{"message": "Field 'viewer' doesn't exist on type 'Query'"}]
    }
    unbounded = graphql(
        hub, THREADS.replace("reviewThreads(first: 100)", "reviewThreads"),
        owner="octo", name="hello", number=number,
    )  # fmt: skip
    assert "must provide a `first`" in unbounded.json()["errors"][0]["message"]
    broken = graphql(hub, "query { repository(owner: ")
    assert "Parse error" in broken.json()["errors"][0]["message"]

    missing = graphql(hub, THREADS, owner="octo", name="nope", number=number).json()
    assert missing["data"] == {"repository": None}
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    assert missing["errors"][0]["path"] == ["repository"]

    no_thread = graphql(hub, RESOLVE, threadId="PRRT_nothing").json()
    assert no_thread["errors"][0]["type"] == "NOT_FOUND"
    assert httpx.post(f"{hub.emu.web_url}/api/graphql", json={"query": "{}"}).status_code == 401


def test_resolving_needs_pull_request_write(hub: Hub) -> None:
    number, (first, _, _) = pull_with_two_threads(hub)
    (thread,) = [t for t in hub.emu.review_threads(hub.repo, number) if first in t["comments"]]
    reader = hub.emu.add_installation(
        hub.app_id, "reader", permissions={"pull_requests": "read", "metadata": "read"}
    )
    hub.emu.add_repo("reader", "code", {"src/app.py": "a = 1\nb = 2\n"}, reader)
    hub.emu.commit_files("reader/code", "fix", {"src/app.py": "a = 1\nb = 3\n"})
    pull = hub.emu.add_pull("reader/code", "fix", "Fix", None, "alice")
    own = hub.emu.add_review_comment("reader/code", pull, "alice", "src/app.py", 2, "Why?")
    (own_thread,) = hub.emu.review_threads("reader/code", pull)
    token = hub.emu.installation_token(reader)

    forbidden = graphql(hub, RESOLVE, token=token, threadId=own_thread["id"]).json()
    assert forbidden["errors"][0]["type"] == "FORBIDDEN"
    assert forbidden["errors"][0]["message"] == "Resource not accessible by integration"
    assert hub.emu.review_threads("reader/code", pull)[0] == {**own_thread, "resolved": False}
    assert own_thread["comments"] == [own]
    # Another installation's thread is not even found.
    hidden = graphql(hub, RESOLVE, token=token, threadId=thread["id"]).json()
    assert hidden["errors"][0]["type"] == "NOT_FOUND"
