"""EgressAllowlist: which host:port pairs a sandbox's setup phase may reach; pure decisions."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_PORTS = (80, 443)
"""Ports an entry without a port allows: plain HTTP and HTTPS."""
WILDCARD = "*."


class AllowlistError(ValueError):
    """An allowlist entry is not "host", "host:port" or "*.domain[:port]"."""


def normalize_host(host: str) -> str:
    """Lowercase, without a trailing dot or IPv6 brackets, so equal names compare equal."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_public_address(address: str) -> bool:
    """True for a globally routable address; loopback, private, link-local, etc. are not."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def split_host_port(text: str, default: int | None) -> tuple[str, int | None]:
    """ "host", "host:port", "[v6]" or "[v6]:port" → (normalized host, port or `default`)."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise AllowlistError(f"not a host or host:port: {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a bare IPv6 literal has several colons and no port
    return normalize_host(host), _port(port_text, text) if port_text is not None else default


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise AllowlistError(f"not a port number in {entry!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allowlist entry: a host (or "*.domain" suffix) and a port, or None for 80 and 443."""

    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        host, port = split_host_port(text, None)
        name = host.removeprefix(WILDCARD)
        if not name or "*" in name or "/" in name or " " in name:
            raise AllowlistError(f"not a host name: {text!r}")
        return cls(host, port)

    @property
    def ip_literal(self) -> bool:
        """An IP literal entry also allows private and loopback addresses (it names them)."""
        return is_ip_literal(self.host)

    def matches(self, host: str, port: int) -> bool:
        if port not in ((self.port,) if self.port is not None else DEFAULT_PORTS):
            return False
        if self.host.startswith(WILDCARD):
            # "*.example.com" allows any subdomain, not example.com itself.
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a destination may be contacted, and the one-line reason when it may not."""

    allowed: bool
    reason: str = ""
    private_ok: bool = False
    """True when the matching entry is an IP literal, so a non-public address is fine."""


class EgressAllowlist:
    """The parsed entries; `decide` looks only at the name, never at what it resolves to."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: Sequence[AllowEntry] = tuple(AllowEntry.parse(entry) for entry in entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def decide(self, host: str, port: int) -> Decision:
        host = normalize_host(host)
        for entry in self.entries:
            if entry.matches(host, port):
                return Decision(True, private_ok=entry.ip_literal)
        return Decision(False, f"{destination(host, port)} is not in the egress allowlist")


def address_refusal(host: str, addresses: Iterable[str], decision: Decision) -> str:
    """The reason to refuse a name that resolved to `addresses`, or "" to go ahead."""
    if decision.private_ok:
        return ""
    for address in addresses:
        if not is_public_address(address):
            return (
                f"{normalize_host(host)} resolves to the non-public address {address};"
                " allowlist that IP literal to reach it"
            )
    return ""


def destination(host: str, port: int) -> str:
    """ "host:port" as shown in logs and reports ("[v6]:port" for IPv6)."""
    host = normalize_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
