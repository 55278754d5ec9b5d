"""Fuzzing the webhook receiver with 10,000 generated and mutated deliveries, headers and bodies.

What must hold for every delivery: no 5xx; nothing reaches Redis (the arq queue, the delivery
log, the work registry) unless the delivery carries a valid signature; validly signed mutations
of real payloads (the octokit webhook examples, and ones the GitHub emulator filled from its
state so that they start, stop or ask about work) are refused with a 4xx or handled, never a
5xx. After the run the receiver process still answers: its health check, its metrics, and a
well-formed trigger, which is queued.

All 10,000 go over raw sockets to a real `python -m workers.cli web` process (uvicorn with
uvloop and httptools, as the app runs), so uvicorn's own request and header parsing meets
whatever bytes hypothesis draws: NUL, controls, latin-1, odd header names. The process is not
what bounds the pace: drawing a delivery costs hypothesis about as much as the process takes to
answer it, and in a trial the same deliveries sent in-process through httpx.ASGITransport took
as long (about 3.5 ms each), so nothing is split off in-process. The receiver stands on real
Redis and on the GitHub emulator, which answers its permission gate. hypothesis draws with
`derandomize=True` from seeds whose bytes do not change from run to run: every run sends the
same deliveries, and a failure shrinks to a small one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
import os
import re
import socket
import string
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from arq.jobs import deserialize_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.receiver import WEBHOOK_PATH
from bot.redelivery import LAST_SEEN_KEY
from bot.signature import sign
from tests.conftest import free_port, wait_for_port
from tests.fixtures import WEBHOOK_EXAMPLES, webhook_examples
from tests.github_emulator.emulator import GitHubEmulator

DELIVERIES = 10_000
SECRET = b"fuzz-webhook-secret"
APP_ID = 9_091
OWNER = "octo-org"
REPO = "octo-org/widgets"
BRANCH = "qwen-fix/issue-1"
WRITER, READER = "maintainer", "watcher"
REDIS_DB = 3
"""A database of its own on the session's Redis, emptied before the run."""
WRITE_BUDGET = 60
"""GitHub writes (reactions, comments, tokens) the app may make before deliveries stop acting
as the writer: the app paces its writes at 80 a minute (bot/throttle.py), and past that its
background reactions would queue up and the run would measure the pacing, not the receiver."""
COMMANDS = ("/qwen-fix fix it", "/qwen-fix status", "/qwen-fix stop", "/qwen-fix retry")
SIGNED_ANSWERS = {200, 202, 400, 415, 422}
"""What the receiver may answer a validly signed delivery: handled, or refused saying why."""


# --- what the deliveries are made of ----------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A real payload to mutate: an octokit example, or one the emulator filled from its state."""

    event: str
    text: str
    paths: tuple[tuple[str | int, ...], ...]
    compact: bytes
    """The payload as hookshot sends it: what a replayed signature signed."""


def seed(event: str, payload: dict[str, Any]) -> Seed:
    compact = json.dumps(payload, separators=(",", ":"))
    return Seed(event, compact, tuple(json_paths(payload)), compact.encode())


def json_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*prefix, key)
        if isinstance(child, dict | list) and len(prefix) < 4:
            yield from json_paths(child, (*prefix, key))


def octokit_seeds() -> list[Seed]:
    events = [event["name"] for event in json.loads(WEBHOOK_EXAMPLES.read_text())]
    return [seed(event, example) for event in events for example in webhook_examples(event)]


READ_PATHS: list[tuple[str | int, ...]] = [tuple(path.split(".")) for path in [
    "action", "installation", "installation.id", "label", "label.name", "repository",
    "repository.full_name", "sender", "sender.login", "sender.type", "issue", "issue.number",
    "issue.state", "issue.pull_request", "comment", "comment.id", "comment.body", "comment.user",
    "comment.user.login", "comment.user.type", "comment.pull_request_review_id", "pull_request",
    "pull_request.number", "pull_request.state", "pull_request.head", "pull_request.head.ref",
    "pull_request.user", "pull_request.user.login", "review", "review.id", "review.body",
    "review.user", "review.user.login",
]]  # fmt: skip
"""What routing and the receiver read: mutated more often than the rest of a payload."""
SPECIAL_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63)]
SPECIAL_TEXTS = [
    "", "qwen-fix", "QWEN-FIX", "/qwen-fix", "/qwen-fix status", "/qwen-fix stop",
    "/qwen-fix retry", "/qwen-fix plan", "@qwen-fix please", "labeled", "unlabeled", "closed",
    "created", "submitted", "open", "Bot", "User", BRANCH, REPO, "widgets", "../../app",
    "a/b/c", WRITER, "qwen-fix[bot]", "é", "\u202e", "\x00", "%2e%2e", "1", "x" * 5000,
]  # fmt: skip
RAW_JSON = [
    "[" * 5_000 + "]" * 5_000,
    '{"a":' * 3_000 + "1" + "}" * 3_000,
    "1" + "0" * 5_000,
    "-" + "9" * 4_000,
    "1e999", "-1e999", "1.5", "1E2", "-0", "NaN", "Infinity",
    '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '{"id": 1, "id": "x"}', "[]", "{}", "true",
]  # fmt: skip
"""JSON texts that `json.dumps` would not write: spliced into a serialised payload."""
KNOWN_EVENTS = [
    "issues", "issue_comment", "pull_request", "pull_request_review",
    "pull_request_review_comment", "installation", "ping", "push",
]  # fmt: skip
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
KEPT_HEADERS = {
    "content-length", "transfer-encoding", "host", "connection", "expect", "upgrade", "te",
    "trailer", "x-hub-signature-256",
}  # fmt: skip
"""Extra headers never take these names: they frame the request, or are the signature."""

# Strategies are built once: building one per draw costs more than the delivery it draws.
PERCENT = st.integers(0, 99)
INDEX = st.integers(0, 2**16)
BYTE = st.integers(1, 255)
FLAG = st.booleans()
MUTATION_COUNT = st.integers(0, 4)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(SPECIAL_INTS),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(SPECIAL_TEXTS),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
OPERATIONS = st.sampled_from(["set", "set", "delete", "raw", "wrap", "retarget"])
RAW = st.sampled_from(RAW_JSON)
BYTE_MUTATIONS = st.sampled_from(["none"] * 6 + ["truncate", "flip", "insert", "utf-16", "bom"])
INSERTED = st.binary(min_size=1, max_size=8)
EVENT_NAMES = st.sampled_from(KNOWN_EVENTS)
RANDOM_BODIES = st.binary(max_size=300)


def header_values(max_size: int) -> st.SearchStrategy[bytes]:
    """Printable text, any text as UTF-8, or any bytes; never CR or LF, which would end the
    header line and with it the request's framing. NUL, controls and latin-1 go as they are."""
    return st.one_of(
        st.text(string.printable, max_size=max_size).map(str.encode),
        st.text(max_size=max_size).map(str.encode),
        st.binary(max_size=max_size),
    ).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b""))


EVENT_VARIANTS = st.sampled_from([None, b"", *map(str.encode, KNOWN_EVENTS)]) | header_values(40)
DELIVERY_VARIANTS = st.sampled_from([b"", b"repeat-me", b"a" * 101]) | header_values(120)
CONTENT_TYPES = st.sampled_from([
    None, b"", b"application/json; charset=utf-8", b"APPLICATION/JSON", b"text/plain",
    b"application/x-www-form-urlencoded", b"application/jsonx", b"application/json;;",
]) | header_values(40)  # fmt: skip
SIGNATURES = st.sampled_from(
    ["valid"] * 8
    + ["missing", "wrong-secret", "replayed", "flipped", "truncated", "upper", "sha1", "empty"]
    + ["junk", "sha256-junk"]
)
JUNK = header_values(80)
EXTRA_HEADERS = st.lists(
    st.tuples(
        st.text(TOKEN_CHARS, min_size=1, max_size=24)
        .filter(lambda name: name.lower() not in KEPT_HEADERS)
        .map(str.encode),
        header_values(60),
    ),
    min_size=1,
    max_size=3,
)


@dataclass(frozen=True)
class Delivery:
    """One POST to the webhook path, before its delivery id is filled in."""

    event: bytes | None
    delivery: bytes | None
    """None: a fresh id, so the delivery is not a duplicate."""
    content_type: bytes | None
    signature: str
    """How the X-Hub-Signature-256 header is made; see `signature_header`."""
    junk: bytes
    body: bytes
    original: bytes
    """The body before mutation: what a replayed signature signed."""
    extra: tuple[tuple[bytes, bytes], ...]

    def headers(self, fresh_id: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The headers to send, and the delivery id among them."""
        delivery = fresh_id if self.delivery is None else self.delivery
        headers = [(b"User-Agent", b"GitHub-Hookshot/fuzz"), (b"X-GitHub-Delivery", delivery)]
        if self.event is not None:
            headers.append((b"X-GitHub-Event", self.event))
        if self.content_type is not None:
            headers.append((b"Content-Type", self.content_type))
        if self.signature_header is not None:
            headers.append((b"X-Hub-Signature-256", self.signature_header))
        return headers + list(self.extra), delivery

    @functools.cached_property
    def signature_header(self) -> bytes | None:
        valid = sign(SECRET, self.body).encode()
        return {
            "valid": valid,
            "missing": None,
            "wrong-secret": sign(b"not-the-secret", self.body).encode(),
            "replayed": sign(SECRET, self.original).encode(),
            "flipped": valid[:-1] + (b"0" if valid.endswith(b"1") else b"1"),
            "truncated": valid[:-1],
            "upper": valid.upper(),
            "sha1": b"sha1=" + hmac.new(SECRET, self.body, hashlib.sha1).hexdigest().encode(),
            "empty": b"",
            "junk": self.junk,
            "sha256-junk": b"sha256=" + self.junk,
        }[self.signature]

    @functools.cached_property
    def signed(self) -> bool:
        """The oracle: the header is exactly GitHub's signature of exactly this body."""
        return self.signature_header == sign(SECRET, self.body).encode()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        # What hypothesis prints for a failing delivery: the parts that vary, bodies cut short.
        body = self.body if len(self.body) < 400 else self.body[:300] + b"..." + self.body[-60:]
        return (
            f"Delivery(event={self.event!r}, delivery={self.delivery!r}, "
            f"content_type={self.content_type!r}, signature={self.signature!r} "
            f"(signed: {self.signed}), junk={self.junk!r}, extra={self.extra!r}, "
            f"{len(self.body)} bytes: {body!r})"
        )


def deliveries(
    seeds: list[Seed], triggers: list[Seed], installation_id: int
) -> st.SearchStrategy[Delivery]:
    """Deliveries made of real payloads (half of them ones that start work) or of nothing."""
    chosen = st.sampled_from(seeds) | st.sampled_from(triggers)
    return delivery_of(mutated_payloads(chosen, installation_id), generated_bodies())


@st.composite
def delivery_of(
    draw: st.DrawFn,
    mutated: st.SearchStrategy[tuple[str, bytes, bytes]],
    generated: st.SearchStrategy[tuple[str, bytes, bytes]],
) -> Delivery:
    event, body, original = draw(mutated if draw(PERCENT) < 80 else generated)
    signature = draw(SIGNATURES)
    return Delivery(
        event=event.encode() if draw(PERCENT) < 85 else draw(EVENT_VARIANTS),
        delivery=None if draw(PERCENT) < 90 else draw(DELIVERY_VARIANTS),
        content_type=b"application/json" if draw(PERCENT) < 85 else draw(CONTENT_TYPES),
        signature=signature,
        junk=draw(JUNK) if signature.endswith("junk") else b"",
        body=body,
        original=original,
        extra=tuple(draw(EXTRA_HEADERS)) if draw(PERCENT) < 20 else (),
    )


@st.composite
def mutated_payloads(
    draw: st.DrawFn, seeds: st.SearchStrategy[Seed], installation_id: int
) -> tuple[str, bytes, bytes]:
    """A seed's event, its body after up to four mutations, and its body before them."""
    chosen = draw(seeds)
    payload = json.loads(chosen.text)
    splices: dict[str, str] = {}
    for _ in range(draw(MUTATION_COUNT)):
        paths = READ_PATHS if draw(PERCENT) < 70 else chosen.paths
        path = paths[draw(INDEX) % len(paths)]
        operation = draw(OPERATIONS)
        if operation == "retarget":
            retarget(payload, installation_id if draw(FLAG) else None)
            continue
        value = draw(JSON_VALUES) if operation == "set" else None
        if operation == "raw":
            value = f"\x00splice{len(splices)}\x00"
            splices[json.dumps(value)] = draw(RAW)
        mutate(payload, path, operation, value)
    body = json.dumps(payload, ensure_ascii=draw(FLAG), separators=(",", ":"))
    for marker, raw in splices.items():
        body = body.replace(marker, raw)
    return chosen.event, mutated_bytes(draw, body.encode()), chosen.compact


def retarget(payload: dict[str, Any], installation_id: int | None) -> None:
    """Point an octokit example at the emulator's repository (and installation), so that it
    reaches the permission gate instead of stopping at an installation GitHub does not know."""
    if isinstance(payload.get("repository"), dict):
        payload["repository"]["full_name"] = REPO
    if installation_id is not None:
        payload["installation"] = {"id": installation_id}


def mutate(payload: Any, path: tuple[str | int, ...], operation: str, value: Any) -> None:
    parent = payload
    for step in path[:-1]:
        if not has(parent, step):
            return
        parent = parent[step]
    last = path[-1]
    if isinstance(parent, dict) and isinstance(last, str):
        if operation == "delete":
            parent.pop(last, None)
        elif operation == "wrap":
            parent[last] = [parent.get(last)]
        else:
            parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and has(parent, last):
        if operation == "delete":
            del parent[last]
        else:
            parent[last] = [parent[last]] if operation == "wrap" else value


def has(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and step < len(container)


def mutated_bytes(draw: st.DrawFn, body: bytes) -> bytes:
    kind = draw(BYTE_MUTATIONS)
    at = draw(INDEX) % (len(body) + 1)
    if kind == "truncate":
        return body[:at]
    if kind == "flip" and at < len(body):
        return body[:at] + bytes([body[at] ^ draw(BYTE)]) + body[at + 1 :]
    if kind == "insert":
        return body[:at] + draw(INSERTED) + body[at:]
    if kind == "utf-16":
        return body.decode().encode("utf-16")
    if kind == "bom":
        return b"\xef\xbb\xbf" + body
    return body


@st.composite
def generated_bodies(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    """A body from nothing: random JSON, or random bytes."""
    event = draw(EVENT_NAMES)
    body = json.dumps(draw(JSON_VALUES)).encode() if draw(FLAG) else draw(RANDOM_BODIES)
    return event, body, body


# --- where the deliveries go -------------------------------------------------------------------


class Stage:
    """The emulated GitHub the receiver asks about permissions, and the seeds it is fed."""

    def __init__(self, emulator: GitHubEmulator) -> None:
        self.emulator = emulator
        self.key = emulator.add_app(APP_ID, slug="qwen-fix")
        self.installation_id = emulator.add_installation(APP_ID, OWNER, account_type="Organization")
        emulator.add_repo(OWNER, "widgets", {"app.py": "x = 1\n"}, self.installation_id)
        emulator.set_permission(REPO, WRITER, "write")
        emulator.set_permission(REPO, READER, "read")
        emulator.add_user("qwen-fix[bot]", type="Bot")
        self.issue = emulator.add_issue(REPO, "Widgets break", "They do.", READER)
        emulator.add_label(REPO, "qwen-fix", issue=self.issue)
        emulator.commit_files(REPO, BRANCH, {"app.py": "x = 2\n"}, "Fix #1")
        self.pull = emulator.add_pull(REPO, BRANCH, "Fix #1", "Fixes #1", "qwen-fix[bot]")
        self.seeds = octokit_seeds()
        self.triggers = [self.trigger(*made) for made in self.trigger_payloads()]

    def trigger_payloads(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Payloads that, unmutated, start, stop or ask about work: the deep paths."""
        emulator, issue, pull = self.emulator, self.issue, self.pull
        for sender in (WRITER, READER):
            for action in ("labeled", "unlabeled"):
                yield self.webhook("issues", action, sender, issue=issue, label="qwen-fix")
            # octokit has no issues.closed example; a reopened one, closed, is the same shape.
            event, reopened = self.webhook("issues", "reopened", sender, issue=issue)
            yield event, reopened | {"action": "closed"}
            yield self.webhook("pull_request", "closed", sender, pull=pull)
            for text in COMMANDS:
                for number in (issue, pull):
                    comment = emulator.add_comment(REPO, number, text, sender)
                    yield self.webhook(
                        "issue_comment", "created", sender, issue=number, comment=comment
                    )
            line = emulator.add_review_comment(REPO, pull, sender, "app.py", 1, "@qwen-fix x")
            yield self.webhook("pull_request_review_comment", "created", sender, comment=line)
            review = emulator.add_review(REPO, pull, sender, "@qwen-fix tidy up")
            yield self.webhook("pull_request_review", "submitted", sender, review=review)

    def webhook(
        self, event: str, action: str, sender: str, **context: Any
    ) -> tuple[str, dict[str, Any]]:
        return event, self.emulator.webhook(event, action, repo=REPO, sender=sender, **context)

    def trigger(self, event: str, payload: dict[str, Any]) -> Seed:
        """The payload with the emulator's port and the clock taken out, so that its bytes, and
        with them every mutation hypothesis draws, are the same in every run."""
        text = json.dumps(payload).replace(self.emulator.web_url, "https://github.example")
        text = re.sub(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', '"2026-01-02T03:04:05Z"', text)
        return seed(event, json.loads(text))

    def labeled_by_writer(self) -> bytes:
        _, payload = self.webhook("issues", "labeled", WRITER, issue=self.issue, label="qwen-fix")
        return json.dumps(payload).encode()


class WriterBudget:
    """Lets deliveries act as the user with write access until the app has made WRITE_BUDGET
    writes to GitHub; after that, the writer's deliveries go out as the reader's (the body is
    rewritten before it is signed, so the signature kind drawn still holds)."""

    def __init__(self, emulator: GitHubEmulator) -> None:
        self.requests = emulator.world.requests
        self.seen = len(self.requests)
        self.writes = 0

    def apply(self, delivery: Delivery) -> Delivery:
        writer = f'"login":"{WRITER}"'.encode()
        if writer not in delivery.body or not self.spent():
            return delivery
        reader = f'"login":"{READER}"'.encode()
        return replace(delivery, body=delivery.body.replace(writer, reader))

    def spent(self) -> bool:
        new = self.requests[self.seen :]
        self.seen += len(new)
        self.writes += sum(r.method != "GET" and not r.path.endswith("/graphql") for r in new)
        return self.writes >= WRITE_BUDGET


@dataclass(frozen=True)
class Answer:
    """What came back for one request."""

    status: int
    content: bytes

    @property
    def by_receiver(self) -> bool:
        """The receiver's JSON answer, not uvicorn refusing a request it could not parse."""
        return self.content.startswith(b'{"status":')

    @property
    def label(self) -> str:
        return str(self.status) if self.by_receiver else f"{self.status} from uvicorn"


class RawHTTP:
    """HTTP/1.1 over a kept-alive socket, with header bytes sent exactly as given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._socket: socket.socket | None = None
        self._reader: Any = None

    def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> Answer:
        lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
        lines += [name + b": " + value for name, value in headers]
        lines.append(b"Content-Length: " + str(len(body)).encode())
        message = b"\r\n".join(lines) + b"\r\n\r\n" + body
        try:
            return self._exchange(message)
        except (ConnectionError, EOFError):
            # The server closed the kept-alive connection under us: once more on a fresh one.
            self.close()
            return self._exchange(message)

    def _exchange(self, message: bytes) -> Answer:
        if self._socket is None:
            self._socket = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self._reader = self._socket.makefile("rb")
        self._socket.sendall(message)
        status_line = self._reader.readline()
        if not status_line:
            raise EOFError("the server closed the connection without an answer")
        length, close = None, False
        while (line := self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            close |= name.strip().lower() == b"connection" and b"close" in value.lower()
        content = self._reader.read() if length is None else self._reader.read(length)
        if close or length is None:
            self.close()
        return Answer(int(status_line.split()[1]), content)

    def close(self) -> None:
        if self._socket is not None:
            self._reader.close()
            self._socket.close()
        self._socket = self._reader = None


class RedisWatch:
    """The parts of Redis a delivery without a valid signature must leave as they were."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)
        self.last = self.snapshot()

    def snapshot(self) -> tuple[int, int, int]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.dbsize()
        pipe.zcard("arq:queue")
        pipe.zcard("arq:abort")
        size, queued, aborts = pipe.execute()
        return size, queued, aborts

    def changed(self) -> bool:
        now = self.snapshot()
        changed, self.last = now != self.last, now
        return changed

    def jobs(self) -> list[dict[str, Any]]:
        """The payloads of the queued jobs."""
        ids = cast(list[bytes], self.redis.zrange("arq:queue", 0, -1))
        data = [cast(bytes | None, self.redis.get(b"arq:job:" + job_id)) for job_id in ids]
        return [deserialize_job(raw).args[0] for raw in data if raw is not None]

    def claimed_deliveries(self) -> set[str]:
        prefix = b"qwen-fix:delivery:"
        return {key[len(prefix) :].decode() for key in self.redis.scan_iter(prefix + b"*")}


@dataclass
class Run:
    """Sends the deliveries, checks each one, and keeps the counts."""

    client: RawHTTP
    watch: RedisWatch
    budget: WriterBudget
    answers: Counter[str] = field(default_factory=Counter)
    signed_ids: set[str] = field(default_factory=set)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def send(self, drawn: Delivery) -> None:
        """The per-delivery invariants; hypothesis shrinks a delivery that breaks one."""
        delivery = self.budget.apply(drawn)
        headers, delivery_id = delivery.headers(f"fuzz-{next(self.ids)}".encode())
        answer = self.client.request("POST", WEBHOOK_PATH, headers, delivery.body)
        self.answers[answer.label] += 1
        if delivery.signed:
            text = delivery_id.decode("latin-1")
            self.signed_ids |= {text, text.strip(" \t")}  # a server strips blank padding
        assert answer.status < 500, answer
        refused_by_uvicorn = answer.status == 400 and not answer.by_receiver
        if delivery.signed:
            assert answer.status in SIGNED_ANSWERS or refused_by_uvicorn, answer
            self.watch.changed()
            return
        assert answer.status == 401 or refused_by_uvicorn, answer
        assert not self.watch.changed(), "a delivery without a valid signature changed Redis"

    def summary(self, unsigned_work: int) -> str:
        shown = ", ".join(f"{count} {label}" for label, count in self.answers.most_common())
        fives = sum(count for label, count in self.answers.items() if label.startswith("5"))
        return (
            f"{sum(self.answers.values())} deliveries: {shown}, {fives} 5xx, "
            f"{unsigned_work} enqueued without a valid signature"
        )


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield Stage(emulator)


@pytest.fixture
def fuzz_redis(redis_url: str) -> str:
    url = f"{redis_url}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def web(stage: Stage, fuzz_redis: str, tmp_path: Path) -> Iterator[tuple[RawHTTP, Path]]:
    """`qwen-fix web` as the app runs it, on a free port, with its log for failure messages."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": stage.key,
        "WEBHOOK_SECRET": SECRET.decode(),
        "GITHUB_API_URL": stage.emulator.api_url,
        "REDIS_URL": fuzz_redis,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "web"],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    client = RawHTTP(port)
    try:
        wait_for_port(port, timeout=30)
        # The start-up catch-up leaves its mark in Redis: let it, before Redis is watched.
        marks = redis.Redis.from_url(fuzz_redis)
        deadline = time.monotonic() + 30
        while not marks.exists(LAST_SEEN_KEY) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield client, log
        assert process.poll() is None, f"the receiver exited\n{log.read_text()[-5000:]}"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def signed_headers(body: bytes, delivery_id: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"X-GitHub-Event", b"issues"),
        (b"X-GitHub-Delivery", delivery_id.encode()),
        (b"X-Hub-Signature-256", sign(SECRET, body).encode()),
        (b"Content-Type", b"application/json"),
    ]


def test_no_delivery_makes_the_receiver_fail_or_queue_unsigned_work(
    stage: Stage,
    fuzz_redis: str,
    web: tuple[RawHTTP, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    client, log = web
    run = Run(client, RedisWatch(fuzz_redis), WriterBudget(stage.emulator))

    @settings(
        max_examples=DELIVERIES,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(deliveries(stage.seeds, stage.triggers, stage.installation_id))
    def fuzz(delivery: Delivery) -> None:
        run.send(delivery)

    fuzz()
    seconds = time.monotonic() - started

    jobs = run.watch.jobs()
    unsigned = [job for job in jobs if job["delivery_id"] not in run.signed_ids]
    unsigned_claims = run.watch.claimed_deliveries() - run.signed_ids
    with capsys.disabled():
        print(
            f"\n{run.summary(len(unsigned) + len(unsigned_claims))}; {len(jobs)} jobs queued; "
            f"{DELIVERIES} over HTTP to `qwen-fix web` in {seconds:.1f} s"
        )
    assert sum(run.answers.values()) == DELIVERIES
    assert unsigned == [] and unsigned_claims == set()
    assert jobs, "no delivery was queued: the invariants held against nothing"
    # Every outcome was reached, down to uvicorn's own parser.
    assert {"200", "202", "400", "401", "415", "400 from uvicorn"} <= set(run.answers)

    assert client.request("GET", "/healthz", []).status == 200
    metrics = client.request("GET", "/metrics", [])
    assert metrics.status == 200 and b"qwen_fix_webhook_deliveries_total" in metrics.content
    labeled = stage.labeled_by_writer()
    queued = client.request("POST", WEBHOOK_PATH, signed_headers(labeled, "after-fuzz"), labeled)
    assert queued.status == 202, queued
    assert "Exception in ASGI application" not in log.read_text(errors="replace")
