"""EgressProxy: an allowlisting HTTP proxy on a UNIX socket, the setup phase's only way out.

It speaks CONNECT (HTTPS, or any TCP) and absolute-URI plain HTTP requests. A destination
is checked against the allowlist by name before anything is resolved; a name that resolves
to a non-public address is refused unless the allowlist names that IP literal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from sandbox.allowlist import (
    AllowlistError,
    Decision,
    EgressAllowlist,
    address_refusal,
    destination,
    is_ip_literal,
    split_host_port,
)

log = structlog.get_logger(__name__)

HEAD_LIMIT = 64 * 1024
"""Longest request line plus headers the proxy reads."""
CHUNK = 64 * 1024
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization"})


class ProxyRefusal(Exception):
    """A request the proxy answers with an error status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """The head of one proxy request: where to, and what to send upstream first."""

    method: str
    host: str
    port: int
    upstream_head: bytes
    """Bytes to send upstream before relaying (empty for CONNECT)."""

    @property
    def tunnel(self) -> bool:
        return self.method == "CONNECT"


def parse_request_head(head: bytes) -> ProxyRequest:
    """Parse "CONNECT host:port" or "METHOD http://host[:port]/path"; ProxyRefusal(400) else."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProxyRefusal(400, "not an HTTP/1.x request line")
    method, target, version = parts
    if method == "CONNECT":
        host, port = _authority(target, None)
        return ProxyRequest(method, host, port, b"")
    url = urlsplit(target)
    if url.scheme != "http" or not url.netloc:
        raise ProxyRefusal(400, "only CONNECT and absolute http:// URLs go through this proxy")
    host, port = _authority(url.netloc.rpartition("@")[2], 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [line for line in lines[1:] if line and _header_name(line) not in HOP_HEADERS]
    # One request per connection: the proxy never has to parse where a response ends.
    upstream = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
    return ProxyRequest(method, host, port, "\r\n".join(upstream).encode("latin-1"))


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    try:
        host, port = split_host_port(text, default_port)
    except AllowlistError:
        raise ProxyRefusal(400, f"not a host:port: {text!r}") from None
    if not host or port is None:
        raise ProxyRefusal(400, f"not a host:port: {text!r}")
    return host, port


def _header_name(line: str) -> str:
    return line.partition(":")[0].strip().lower()


def refusal_response(status: int, reason: str) -> bytes:
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 504: "Gateway Timeout"}
    body = f"qwen-fix egress proxy: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {phrase.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class EgressReport:
    """Which destinations were contacted and which were refused, with how often and why."""

    contacted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the setup log, e.g. `[egress: contacted a:443 ×2; refused b:443 ×1 (…)]`."""
        if not self.contacted and not self.refused:
            return "[egress: no connections]"
        parts = []
        if self.contacted:
            hosts = ", ".join(f"{name} ×{n}" for name, n in sorted(self.contacted.items()))
            parts.append(f"contacted {hosts}")
        if self.refused:
            hosts = ", ".join(
                f"{name} ×{n} ({self.reasons[name]})" for name, n in sorted(self.refused.items())
            )
            parts.append(f"refused {hosts}")
        return "[egress: " + "; ".join(parts) + "]"


class EgressProxy:
    """Serves proxy requests on `socket_path` until closed; `report` says what happened."""

    def __init__(
        self,
        allowlist: EgressAllowlist,
        socket_path: Path,
        *,
        max_connections: int = 64,
        connect_timeout: float = 15.0,
        head_timeout: float = 15.0,
        idle_timeout: float = 300.0,
    ) -> None:
        self.allowlist = allowlist
        self.socket_path = socket_path
        self.report = EgressReport()
        self._slots = asyncio.Semaphore(max_connections)
        self._connect_timeout = connect_timeout
        self._head_timeout = head_timeout
        self._idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=HEAD_LIMIT
        )
        # Who may connect is decided by the directory holding the socket, not the socket.
        os.chmod(self.socket_path, 0o666)

    async def close(self) -> None:
        """Stop listening, cut every open connection and remove the socket."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            async with self._slots:
                await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._head_timeout):
            head = await reader.readuntil(b"\r\n\r\n")
        try:
            request = parse_request_head(head)
            upstream = await self._open_upstream(request)
        except ProxyRefusal as refusal:
            writer.write(refusal_response(refusal.status, refusal.reason))
            await writer.drain()
            return
        up_reader, up_writer = upstream
        try:
            if request.tunnel:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(request.upstream_head)
            await relay(reader, writer, up_reader, up_writer, self._idle_timeout)
        finally:
            up_writer.close()

    async def _open_upstream(
        self, request: ProxyRequest
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        name = destination(request.host, request.port)
        decision = self.allowlist.decide(request.host, request.port)
        if not decision.allowed:
            self._refuse(name, 403, decision.reason)
        addresses = await self._resolve(request, decision)
        refusal = address_refusal(request.host, addresses, decision)
        if refusal:
            self._refuse(name, 403, refusal)
        error: OSError | TimeoutError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    # Connect to the vetted address, never the name: no second lookup.
                    opened = await asyncio.open_connection(address, request.port, limit=CHUNK)
            except (OSError, TimeoutError) as exc:
                error = exc
                continue
            self.report.contacted[name] += 1
            log.info("egress.allowed", destination=name, address=address)
            return opened
        self._refuse(name, 502, f"cannot connect to {name}: {error or 'no address'}")

    async def _resolve(self, request: ProxyRequest, decision: Decision) -> list[str]:
        if is_ip_literal(request.host):
            return [request.host]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                infos = await loop.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            name = destination(request.host, request.port)
            self._refuse(name, 502, f"cannot resolve {request.host}: {exc}")
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _refuse(self, name: str, status: int, reason: str) -> typing.NoReturn:
        self.report.refused[name] += 1
        self.report.reasons[name] = reason
        log.warning("egress.refused", destination=name, status=status, reason=reason)
        raise ProxyRefusal(status, reason)


async def relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
    idle_timeout: float,
) -> None:
    """Copy both ways until both sides finish, one side fails, or nothing moves for a while."""
    activity = _Activity()
    pumps = {
        asyncio.create_task(_pump(client_reader, upstream_writer, activity, idle_timeout)),
        asyncio.create_task(_pump(upstream_reader, client_writer, activity, idle_timeout)),
    }
    try:
        while pumps:
            done, pumps = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if not all(task.result() for task in done):
                break  # a reset or a stall on one side ends the whole exchange
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


class _Activity:
    """When bytes last moved in either direction, shared by a connection's two pumps."""

    def __init__(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def touch(self) -> None:
        self.last = asyncio.get_running_loop().time()

    def idle_for(self) -> float:
        return asyncio.get_running_loop().time() - self.last


async def _pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    activity: _Activity,
    idle_timeout: float,
) -> bool:
    """Copy `source` to `sink`; True at a clean end of input, False on an error or a stall."""
    try:
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    data = await source.read(CHUNK)
            except TimeoutError:
                # A long download leaves the upload side quiet: only a quiet pair is stalled.
                if activity.idle_for() >= idle_timeout:
                    return False
                continue
            if not data:
                break
            activity.touch()
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
        return True
    except OSError:
        return False
