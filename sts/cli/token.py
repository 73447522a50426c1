"""``sts token decode``: what a pasted token says, for an operator reading it.

The header and the claims (PyJWT parses the token: nothing here decodes JOSE itself), the
``act`` chain drawn in hop order (hop 1 is the first actor, the deepest level of ``act``;
the last hop is the current actor, the outermost level), and every time as ISO-8601 with
how long ago or how soon. Nothing is verified unless ``--verify`` asks: then the signature is
checked against this STS's published keys and ``iss`` against its issuer, and the answer says
which key verified it, or why not (exit status 1).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from jwt.exceptions import InvalidTokenError

from sts.cli.support import emit, handles_errors, iso_time, json_option, load_settings, say
from sts.cli.support import now_seconds as wall_clock
from sts.core import jws
from sts.core.chain import Chain, ChainError
from sts.core.keys import KeyStore
from sts.core.logs import redact
from sts.services.errors import Invalid

#: Claims that hold a time (RFC 7519 §4.1.4-6).
TIME_CLAIMS = ("iat", "nbf", "exp")
#: Largest token read (a token the STS would accept is far smaller).
MAX_TOKEN_BYTES = 65536
#: The argument that means "read the token from stdin".
STDIN = "-"


@click.group("token")
def token_group() -> None:
    """Read tokens."""


def relative(ts: int, now: int) -> str:
    """``in 4m 10s``, ``3h 2m ago``, ``now``: the largest unit and the next one."""
    delta = ts - now
    if delta == 0:
        return "now"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    left = abs(delta)
    first = next(i for i, (_, size) in enumerate(units) if left >= size)
    parts: list[str] = []
    for unit, size in units[first : first + 2]:
        if left // size or not parts:
            parts.append(f"{left // size}{unit}")
        left %= size
    text = " ".join(parts[:2])
    return f"in {text}" if delta > 0 else f"{text} ago"


def _read(token: str | None) -> str:
    if token in (None, STDIN):
        token = sys.stdin.read(MAX_TOKEN_BYTES + 1)
    assert token is not None
    token = token.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Invalid("no token given (an argument, or on stdin)", "token")
    if len(token) > MAX_TOKEN_BYTES:
        raise Invalid(f"the token is longer than {MAX_TOKEN_BYTES} bytes", "token")
    return token


def _hops(claims: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The act chain in hop order (1 = first hop), or why it cannot be read."""
    try:
        chain = Chain.from_act(claims.get("act"))
    except ChainError as exc:
        return [], str(exc)
    ordered = list(reversed(chain.actors))
    return [
        {"hop": i, "sub": a.sub, **({"iss": a.iss} if a.iss else {})}
        for i, a in enumerate(ordered, 1)
    ], None


def _times(claims: dict[str, Any], now: int) -> dict[str, dict[str, str]]:
    return {
        name: {"at": iso_time(claims[name]), "relative": relative(claims[name], now)}
        for name in TIME_CLAIMS
        if isinstance(claims.get(name), int) and not isinstance(claims.get(name), bool)
    }


def _verify(parsed: jws.ParsedJWS, now: int) -> tuple[bool, str]:
    """Against this STS: a published key by ``kid``, its algorithm, the signature, ``iss``."""
    settings = load_settings()
    kid = parsed.header.get("kid")
    key = KeyStore.for_settings(settings).ring.verification_key(kid, now) if kid else None
    if not isinstance(kid, str) or key is None:
        return False, "its kid is not a published key of this STS"
    if parsed.header.get("alg") != key.alg:
        return False, f"its alg is not the algorithm of key {kid}"
    try:
        parsed.verify(key.public_key, key.alg)
    except InvalidTokenError:
        return False, f"the signature does not verify with key {kid}"
    if parsed.claims.get("iss") != settings.issuer:
        return False, f"signed with key {kid}, but its iss is not {settings.issuer}"
    return True, f"signature verified with key {kid} of {settings.issuer}"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _print(
    parsed: jws.ParsedJWS,
    hops: list[dict[str, Any]],
    act_error: str | None,
    times: dict[str, dict[str, str]],
    verdict: tuple[bool, str] | None,
) -> None:
    say("header")
    width = max((len(k) for k in parsed.header), default=0)
    for name, value in parsed.header.items():
        say(f"  {name:<{width}}  {_value(value)}")
    say("claims")
    width = max((len(k) for k in parsed.claims), default=0)
    for name, value in parsed.claims.items():
        if name == "act":
            continue
        shown = _value(value)
        if name in times:
            shown = f"{times[name]['at']}  ({times[name]['relative']})"
        say(f"  {name:<{width}}  {shown}")
    if act_error is not None:
        say(f"act chain: unreadable ({act_error})")
    elif hops:
        say("act chain (hop 1 = first actor, deepest in act; the last hop acts now)")
        for hop in hops:
            whose = f"  (issuer {hop['iss']})" if "iss" in hop else ""
            now = "  <- current actor" if hop["hop"] == len(hops) else ""
            say(f"  hop {hop['hop']}  {hop['sub']}{whose}{now}")
    else:
        say("act chain: none (the subject acts for itself)")
    if verdict is None:
        say("signature: NOT verified (--verify checks it against this STS's keys)")
    else:
        say(f"signature: {'VALID' if verdict[0] else 'INVALID'}: {verdict[1]}")


@token_group.command("decode")
@click.argument("token", required=False)
@click.option("--verify", is_flag=True, help="Check the signature against this STS's keys.")
@json_option
@handles_errors
def decode(token: str | None, verify: bool, as_json: bool) -> None:
    """Show a token's header, claims, act chain (hop 1 = first hop) and times. TOKEN is
    read from stdin when omitted or '-'. Not verified unless --verify (exit 1 if invalid)."""
    raw = _read(token)
    try:
        parsed = jws.parse(raw)
    except InvalidTokenError as exc:
        raise Invalid(f"not a JWT: {redact(str(exc))[:200]}", "token") from None
    now = wall_clock()
    hops, act_error = _hops(parsed.claims)
    times = _times(parsed.claims, now)
    verdict = _verify(parsed, now) if verify else None
    data = {
        "header": parsed.header,
        "claims": parsed.claims,
        "chain": hops,
        "times": times,
        "verified": None if verdict is None else verdict[0],
        "verification": "not verified" if verdict is None else verdict[1],
    }
    if act_error is not None:
        data["chain_error"] = act_error
    emit(as_json, data, lambda: _print(parsed, hops, act_error, times, verdict))
    if verdict is not None and not verdict[0]:
        sys.exit(1)
