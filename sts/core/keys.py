"""Signing keys and the JWKS (RFC 7517), DESIGN §9.

``keys/`` holds one PEM private key per file, named ``<UTC timestamp>-<ALG>-<suffix>.pem``;
the file name without ``.pem`` is the key's ``kid``. Keys are parsed once when the directory
changes, never per request.

Rotation without downtime: a new key is *staged*. It is published in the JWKS at once but
signs only once it has been published for the stage time (``STS_KEY_STAGE_SECONDS``), by when
every verifier's cached JWKS (HTTP caches, the SDK's cache, a replica's next rescan of the
directory) knows it. The newest key past its stage time signs; the oldest key needs no stage
(nothing could sign before it: a first key signs at once). A key generated for an emergency
rotation, named ``...-now``, signs at once too. A key that has been superseded stays published
(and keeps verifying) until every token it can have signed has expired: the activation of its
successor plus the global maximum token lifetime plus the leeway.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

if TYPE_CHECKING:
    from sts.core.settings import Settings

__all__ = ["KeyFileError", "KeyRing", "KeyStore", "SigningKey", "generate_key"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

log = logging.getLogger("sts.core.keys")
_NAME = re.compile(
    r"^(?P<ts>\d{8}T\d{6}Z)-(?P<alg>ES256|EdDSA|RS256)-(?P<suffix>[a-z0-9]{1,16})(?P<now>-now)?$"
)
#: The name's mark of a key that signs at once, without a stage (an emergency rotation).
IMMEDIATE_MARK = "-now"
_TS_FORMAT = "%Y%m%dT%H%M%SZ"


class KeyFileError(Exception):
    """The key directory or a key file is unusable. The message names the file."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    created_at: int
    private_key: PrivateKey
    public_jwk: dict[str, Any]
    #: Signs as soon as it is the newest key, without a stage (an emergency rotation).
    immediate: bool = False

    @cached_property
    def public_key(self) -> PublicKey:
        """Derived once: every verification of our own tokens needs it."""
        return self.private_key.public_key()


def _public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """Public members only (RFC 7517 §4, RFC 7518 §6): never ``d``, ``p``, ``q`` and friends."""
    public = key.public_key()
    raw: str | dict[str, Any]
    if isinstance(public, ec.EllipticCurvePublicKey):
        raw = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        raw = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk = json.loads(raw) if isinstance(raw, str) else dict(raw)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    jwk.pop("key_ops", None)
    return jwk


def _expected_type(alg: str) -> type:
    return {
        "ES256": ec.EllipticCurvePrivateKey,
        "EdDSA": ed25519.Ed25519PrivateKey,
        "RS256": rsa.RSAPrivateKey,
    }[alg]


def load_key(path: Path) -> SigningKey:
    match = _NAME.match(path.stem)
    if not match:
        raise KeyFileError(
            f"{path}: name must be <YYYYMMDDTHHMMSSZ>-<ES256|EdDSA|RS256>-<id>[-now].pem"
        )
    mode = path.stat().st_mode
    if mode & 0o077:
        raise KeyFileError(f"{path}: private key is readable by others (chmod 600)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key ({type(exc).__name__})") from None
    alg = match["alg"]
    if not isinstance(key, _expected_type(alg)):
        raise KeyFileError(f"{path}: key type does not match {alg}")
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1":
        raise KeyFileError(f"{path}: ES256 needs a P-256 key")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise KeyFileError(f"{path}: RS256 needs at least 2048 bits")
    created = _created(path.stem)
    assert isinstance(key, PrivateKey)
    return SigningKey(
        path.stem, alg, created, key, _public_jwk(key, path.stem, alg), bool(match["now"])
    )


def _created(stem: str) -> int:
    match = _NAME.match(stem)
    if not match:
        return 0
    return int(datetime.strptime(match["ts"], _TS_FORMAT).replace(tzinfo=UTC).timestamp())


def generate_key(
    keys_dir: Path, alg: str, now: int | None = None, *, immediate: bool = False
) -> SigningKey:
    """Create a new private key file (mode 0600) in ``keys_dir`` and return it.

    The key is staged (see the module docstring) unless ``immediate``: then it signs at once,
    for an emergency rotation after a key compromise."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key: PrivateKey
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise KeyFileError(f"unsupported signing algorithm {alg!r}")
    created = int(now if now is not None else time.time())
    # "The newest key signs" must be unambiguous: a key created within the same second as an
    # existing one is stamped one second after the newest, so creation order is name order.
    newest = max((_created(p.stem) for p in keys_dir.glob("*.pem")), default=None)
    if now is None and newest is not None and created <= newest:
        created = newest + 1
    stamp = datetime.fromtimestamp(created, UTC)
    kid = f"{stamp.strftime(_TS_FORMAT)}-{alg}-{secrets.token_hex(4)}"
    if immediate:
        kid += IMMEDIATE_MARK
    path = keys_dir / f"{kid}.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written under a name no scan lists, then linked into place: a running STS rescanning
    # the directory never finds a half-written key, and an existing file is never replaced.
    partial = keys_dir / f".{kid}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return load_key(path)


class KeyRing:
    """An immutable set of loaded keys, oldest first, and when each signs (DESIGN §9).

    A key's *activation* is when it may start signing: its creation plus the stage time, or its
    creation for the oldest key and for an immediate key. At any moment the newest activated key
    signs. A key stops signing when the first newer key activates; every token it signed has
    expired ``retire_after`` seconds later, and it is retired then.
    """

    def __init__(
        self, keys: Sequence[SigningKey], retire_after: int, *, stage_seconds: int
    ) -> None:
        if not keys:
            raise KeyFileError("no signing keys")
        self.keys = sorted(keys, key=lambda k: (k.created_at, k.kid))
        self.retire_after = retire_after
        self.stage_seconds = stage_seconds
        self._by_kid = {k.kid: k for k in self.keys}
        self._activation = {
            k.kid: k.created_at if i == 0 or k.immediate else k.created_at + stage_seconds
            for i, k in enumerate(self.keys)
        }
        #: When each key stopped (or will stop) signing: the first activation of a newer key.
        self._superseded = {
            k.kid: min((self._activation[n.kid] for n in self.keys[i + 1 :]), default=None)
            for i, k in enumerate(self.keys)
        }

    def activation(self, key: SigningKey) -> int:
        """When ``key`` may start signing (it does if no newer key has activated by then)."""
        return self._activation[key.kid]

    def retires_at(self, key: SigningKey) -> int | None:
        """When every token ``key`` can have signed has expired; ``None`` while nothing newer
        has been generated."""
        superseded = self._superseded[key.kid]
        return None if superseded is None else superseded + self.retire_after

    def signing_key(self, now: int) -> SigningKey:
        """The key that signs at ``now``: the newest one past its activation."""
        for key in reversed(self.keys):
            if self._activation[key.kid] <= now:
                return key
        return self.keys[0]  # every key stamped after ``now``: a clock behind the key files

    def status(self, key: SigningKey, now: int) -> str:
        """``staged`` (published, signs from its activation), ``signing``, ``published``
        (verifies the tokens it signed) or ``retired``."""
        signing = self.signing_key(now)
        if key.kid == signing.kid:
            return "signing"
        if (key.created_at, key.kid) > (signing.created_at, signing.kid):
            return "staged"
        retires_at = self.retires_at(key)
        return "published" if retires_at is None or now < retires_at else "retired"

    def published(self, now: int) -> list[SigningKey]:
        return [k for k in self.keys if self.status(k, now) != "retired"]

    def verification_key(self, kid: str, now: int) -> SigningKey | None:
        """The key for ``kid`` if it is still published (staged keys included: a replica whose
        clock runs ahead may sign with one a moment early), else ``None``."""
        key = self._by_kid.get(kid)
        if key is None or self.status(key, now) == "retired":
            return None
        return key

    def jwks(self, now: int) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [k.public_jwk for k in reversed(self.published(now))]}


class KeyStore:
    """The key directory, reloaded when its listing changes (checked at most every few seconds),
    so a key rotated by another process is picked up without a restart."""

    def __init__(
        self,
        keys_dir: Path,
        retire_after: int,
        check_interval: float = 5.0,
        *,
        stage_seconds: int,
    ) -> None:
        self.keys_dir = keys_dir
        self.retire_after = retire_after
        self.stage_seconds = stage_seconds
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._listing: tuple[str, ...] = ()
        self._checked = 0.0
        self._ring = self._load()

    @classmethod
    def for_settings(cls, settings: Settings) -> KeyStore:
        """The key directory as the settings say to read it: a superseded key is retired once
        every token it signed has expired, a new key signs after its stage."""
        return cls(
            settings.keys_dir,
            settings.max_token_ttl + settings.leeway,
            settings.keys_reload_seconds,
            stage_seconds=settings.key_stage_seconds,
        )

    def _scan(self) -> tuple[str, ...]:
        if not self.keys_dir.is_dir():
            raise KeyFileError(f"{self.keys_dir}: key directory does not exist")
        return tuple(sorted(p.name for p in self.keys_dir.glob("*.pem")))

    def _load(self) -> KeyRing:
        listing = self._scan()
        if not listing:
            raise KeyFileError(f"{self.keys_dir}: no signing keys (run 'sts keys generate')")
        ring = KeyRing(
            [load_key(self.keys_dir / name) for name in listing],
            self.retire_after,
            stage_seconds=self.stage_seconds,
        )
        self._listing, self._checked = listing, time.monotonic()
        return ring

    @property
    def ring(self) -> KeyRing:
        if time.monotonic() - self._checked >= self.check_interval:
            with self._lock:
                if time.monotonic() - self._checked >= self.check_interval:
                    self._checked = time.monotonic()
                    try:
                        if self._scan() != self._listing:
                            self._ring = self._load()
                    except (KeyFileError, OSError) as exc:
                        # A bad file dropped into a shared directory must not take the
                        # service down: keep signing with the keys already loaded, loudly.
                        log.error(
                            "key directory not reloaded",
                            extra={"event": "keys.reload_failed", "reason": str(exc)},
                        )
        return self._ring

    def reload(self) -> KeyRing:
        with self._lock:
            self._ring = self._load()
        return self._ring
