"""The setup phase's egress: allowlist decisions, the proxy on its own, and through a sandbox."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from sandbox.allowlist import AllowlistError, Decision, EgressAllowlist, address_refusal
from sandbox.config import SandboxConfig
from sandbox.docker import EGRESS_SOCKET, DockerSandbox
from sandbox.egress import EgressProxy, EgressReport, ProxyRefusal, parse_request_head
from sandbox.forwarder import MISSING_RELAY_EXIT, PORT, proxy_environment
from tests.conftest import free_port
from tests.sandbox.conftest import TEST_LABELS

# The test server listens on the worker's loopback, which inside a sandbox only the proxy
# reaches, so the fetch drops NO_PROXY (it lists 127.0.0.1 for the sandbox's own services).
FETCH = """
import os, sys, urllib.error, urllib.request
for name in ("no_proxy", "NO_PROXY"):
    os.environ.pop(name, None)
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as exc:
    print("HTTP", exc.code, exc.read().decode().strip())
except OSError as exc:
    print("FAILED", exc)
"""
TUNNEL = """
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
connection.set_tunnel("127.0.0.1", int(sys.argv[2]))
connection.request("GET", "/through-a-tunnel")
print(connection.getresponse().read().decode())
"""


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_port() -> Iterator[int]:
    """A real HTTP server on the worker's loopback, answering `hello <path>`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


# --- the allowlist: pure decisions -------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "host", "port", "allowed"),
    [
        (["example.com"], "example.com", 443, True),
        (["example.com"], "example.com", 80, True),
        (["example.com"], "example.com", 8080, False),
        (["example.com:8443"], "example.com", 8443, True),
        (["example.com:8443"], "example.com", 443, False),
        (["example.com"], "EXAMPLE.com.", 443, True),
        (["example.com"], "www.example.com", 443, False),
        (["example.com"], "example.com.evil.net", 443, False),
        (["example.com"], "evilexample.com", 443, False),
        (["*.example.com"], "files.example.com", 443, True),
        (["*.example.com"], "a.b.example.com", 443, True),
        (["*.example.com"], "example.com", 443, False),
        (["*.example.com"], "badexample.com", 443, False),
        (["127.0.0.1:9000"], "127.0.0.1", 9000, True),
        (["127.0.0.1:9000"], "localhost", 9000, False),
        (["[::1]:9000"], "::1", 9000, True),
        ([], "example.com", 443, False),
    ],
)
def test_allowlist_matches_names_exactly(
    entries: list[str], host: str, port: int, allowed: bool
) -> None:
    assert EgressAllowlist(entries).decide(host, port).allowed is allowed


def test_refusal_names_the_destination() -> None:
    decision = EgressAllowlist(["example.com"]).decide("evil.net", 443)
    assert decision.reason == "evil.net:443 is not in the egress allowlist"


@pytest.mark.parametrize("entry", ["", "exa mple.com", "example.com:0", "a.com:99999", "*.*.com"])
def test_malformed_entries_are_rejected(entry: str) -> None:
    with pytest.raises(AllowlistError):
        EgressAllowlist([entry])


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (["93.184.215.14"], False),
        (["2606:4700::6810:84e5"], False),
        (["127.0.0.1"], True),
        (["93.184.215.14", "10.1.2.3"], True),
        (["192.168.1.1"], True),
        (["169.254.169.254"], True),
        (["100.64.0.1"], True),
        (["::1"], True),
        (["fd00::1"], True),
        (["::ffff:127.0.0.1"], True),
    ],
)
def test_names_resolving_to_non_public_addresses_are_refused(
    addresses: list[str], refused: bool
) -> None:
    reason = address_refusal("pkg.example.com", addresses, Decision(True))
    assert bool(reason) is refused
    assert address_refusal("10.0.0.1", addresses, Decision(True, private_ok=True)) == ""


def test_parse_connect_and_absolute_requests() -> None:
    tunnel = parse_request_head(b"CONNECT Example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (tunnel.tunnel, tunnel.host, tunnel.port, tunnel.upstream_head) == (
        True,
        "example.com",
        443,
        b"",
    )
    plain = parse_request_head(
        b"GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n"
        b"Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n"
    )
    assert (plain.host, plain.port) == ("example.com", 80)
    assert plain.upstream_head == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET https://example.com/ HTTP/1.1\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\n\r\n",
        b"CONNECT example.com:http HTTP/1.1\r\n\r\n",
        b"HELLO\r\n\r\n",
    ],
)
def test_requests_that_are_not_proxy_requests_get_400(head: bytes) -> None:
    with pytest.raises(ProxyRefusal) as caught:
        parse_request_head(head)
    assert caught.value.status == 400


def test_report_summary_lists_contacted_and_refused() -> None:
    report = EgressReport()
    assert report.summary() == "[egress: no connections]"
    report.contacted["a.example:443"] += 2
    report.refused["b.example:443"] += 1
    report.reasons["b.example:443"] = "b.example:443 is not in the egress allowlist"
    assert report.summary() == (
        "[egress: contacted a.example:443 ×2; refused b.example:443 ×1"
        " (b.example:443 is not in the egress allowlist)]"
    )


# --- the proxy on its own: a real UNIX socket and a real HTTP server -----------------------


@pytest.fixture
async def proxy(tmp_path: Path, web_port: int) -> AsyncIterator[EgressProxy]:
    allowlist = EgressAllowlist([f"127.0.0.1:{web_port}", f"localhost:{web_port}"])
    async with EgressProxy(allowlist, tmp_path / "proxy.sock", connect_timeout=5) as running:
        yield running


async def exchange(proxy: EgressProxy, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(request)
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_proxy_forwards_an_allowed_plain_request(proxy: EgressProxy, web_port: int) -> None:
    response = await exchange(
        proxy, f"GET http://127.0.0.1:{web_port}/plain HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert response.startswith(b"HTTP/1.0 200") and response.endswith(b"hello /plain")
    assert proxy.report.contacted == {f"127.0.0.1:{web_port}": 1}


async def test_proxy_tunnels_an_allowed_connect(proxy: EgressProxy, web_port: int) -> None:
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{web_port} HTTP/1.1\r\n\r\n".encode())
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    writer.write(b"GET /tunneled HTTP/1.0\r\n\r\n")
    async with asyncio.timeout(10):
        assert (await reader.read()).endswith(b"hello /tunneled")
    writer.close()


async def test_proxy_refuses_a_port_not_on_the_list(proxy: EgressProxy) -> None:
    unlisted = free_port()
    response = await exchange(proxy, f"CONNECT 127.0.0.1:{unlisted} HTTP/1.1\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert response.endswith(
        f"qwen-fix egress proxy: 127.0.0.1:{unlisted} is not in the egress allowlist\n".encode()
    )
    assert proxy.report.refused == {f"127.0.0.1:{unlisted}": 1}
    assert not proxy.report.contacted


async def test_proxy_refuses_a_listed_name_that_resolves_to_loopback(
    proxy: EgressProxy, web_port: int
) -> None:
    response = await exchange(proxy, f"CONNECT localhost:{web_port} HTTP/1.1\r\n\r\n".encode())
    assert response.startswith(b"HTTP/1.1 403")
    assert b"localhost resolves to the non-public address" in response
    assert not proxy.report.contacted


async def test_closing_the_proxy_cuts_open_tunnels_and_removes_the_socket(
    proxy: EgressProxy, web_port: int
) -> None:
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(f"CONNECT 127.0.0.1:{web_port} HTTP/1.1\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await proxy.close()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    assert not proxy.socket_path.exists()


# --- through a real sandbox: the relay, the proxy environment, the teardown -----------------


@pytest.fixture
async def box(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path
) -> AsyncIterator[DockerSandbox]:
    sandbox = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    await sandbox.write_file("/tmp/fetch.py", FETCH.encode())
    yield sandbox
    await sandbox.close()


async def test_setup_reaches_an_allowlisted_host_and_nothing_after(
    box: DockerSandbox, web_port: int
) -> None:
    url = f"http://127.0.0.1:{web_port}/setup"
    result = await box.run_setup(
        f"python3 /tmp/fetch.py {url}", allow=[f"127.0.0.1:{web_port}"], timeout=60
    )
    assert result.ok, result.output
    assert result.output == f"hello /setup\n[egress: contacted 127.0.0.1:{web_port} ×1]\n"

    after = await box.run(f"python3 /tmp/fetch.py {url}", env=proxy_environment())
    assert after.output.startswith("FAILED") and "Connection refused" in after.output
    relays = await box.run("ps -eo args")
    assert "python3 -c" not in relays.output, relays.output
    assert not (box.run_dir / EGRESS_SOCKET).exists()
    assert "HTTP_PROXY" not in (await box.run("env")).output


async def test_setup_tunnels_connect_through_the_relay(box: DockerSandbox, web_port: int) -> None:
    await box.write_file("/tmp/tunnel.py", TUNNEL.encode())
    result = await box.run_setup(
        f"python3 /tmp/tunnel.py {PORT} {web_port}", allow=[f"127.0.0.1:{web_port}"], timeout=60
    )
    assert result.ok, result.output
    assert result.output.startswith("hello /through-a-tunnel\n")


async def test_setup_is_refused_a_host_not_on_the_list(box: DockerSandbox, web_port: int) -> None:
    listed = free_port()
    result = await box.run_setup(
        f"python3 /tmp/fetch.py http://127.0.0.1:{web_port}/x",
        allow=[f"127.0.0.1:{listed}", "example.com"],
        timeout=60,
    )
    reason = f"127.0.0.1:{web_port} is not in the egress allowlist"
    assert result.output == (
        f"HTTP 403 qwen-fix egress proxy: {reason}\n"
        f"[egress: refused 127.0.0.1:{web_port} ×1 ({reason})]\n"
    )


async def test_setup_without_an_allowlist_has_no_network(box: DockerSandbox, web_port: int) -> None:
    # Even pointed at the relay's port by hand, nothing listens there.
    command = (
        f"env | grep -ci proxy; HTTP_PROXY=http://127.0.0.1:{PORT}"
        f" python3 /tmp/fetch.py http://127.0.0.1:{web_port}/none"
    )
    result = await box.run_setup(command, allow=[], timeout=60)
    assert result.output.startswith("0\nFAILED") and "Connection refused" in result.output


async def test_an_image_without_python3_or_socat_gets_a_clear_error(
    docker_client: docker.DockerClient, busybox_image: str, checkout: Path
) -> None:
    config = SandboxConfig(image=busybox_image, memory="128m", pids=32, lifetime=120)
    sandbox = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    try:
        result = await sandbox.run_setup("echo never runs", allow=["example.com"], timeout=30)
    finally:
        await sandbox.close()
    assert result.exit_code == MISSING_RELAY_EXIT
    assert "needs python3 or socat in the sandbox image" in result.output
    assert "never runs" not in result.output
    assert not sandbox.run_dir.exists()
