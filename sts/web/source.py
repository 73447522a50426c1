"""Where a request came from: the peer address, or the address a trusted proxy forwards.

Brute-force throttling counts failures per client and source (DESIGN §5.1), so a stranger
who knows a client_id cannot lock that client out from the sources it really uses. Only a
proxy the operator names (``STS_TRUSTED_PROXIES``) is believed about ``X-Forwarded-For``:
from the right, every address that is itself a trusted proxy is skipped, and the first one
that is not is the source (RFC 7239 §5.2's reasoning, applied to the de facto header).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

Networks = Sequence[IPv4Network | IPv6Network]
#: Most ``X-Forwarded-For`` entries looked at (a longer header is attacker padding).
MAX_FORWARDED = 16


def _address(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address, proxies: Networks) -> bool:
    return any(address in network for network in proxies)


def request_source(environ: dict[str, Any], proxies: Networks) -> str:
    """The request's source address as text (``""`` when the server names no peer)."""
    peer = _address(str(environ.get("REMOTE_ADDR") or ""))
    if peer is None:
        return ""
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "").split(",")[-MAX_FORWARDED:]
    source = peer
    for entry in reversed(forwarded):
        address = _address(entry)
        if address is None:
            break  # a malformed hop: trust nothing further left of it
        source = address
        if not _trusted(address, proxies):
            break
    return str(source)
