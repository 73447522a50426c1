"""Client secrets: generated with 256 bits of entropy, stored only as a keyed hash.

A secret this strong cannot be guessed offline, so a slow password hash (bcrypt, argon2) would
only cost throughput; HMAC-SHA256 under a server-side key means a leaked database alone is not
enough to check guesses either. The hashing key lives beside the signing keys (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from sts.core.domain import CredentialView
from sts.core.keys import KeyFileError

HASH_KEY_FILE = "credential-hash.key"
_PREFIX = "hmac-sha256$"
#: A hash compared against when a client has no secret or does not exist, so that the work
#: done (and the time taken) does not reveal which.
_DECOY = _PREFIX + "0" * 64


def generate_secret() -> str:
    return "sts_" + secrets.token_urlsafe(32)


def new_credential_id(prefix: str = "cred") -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class SecretHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise KeyFileError("credential hashing key must be at least 32 bytes")
        self._key = key

    def hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).hexdigest()
        return _PREFIX + digest

    def derive(self, purpose: str) -> bytes:
        """A key for ``purpose`` (e.g. signing the console's session cookies), derived from
        this one: every STS process sharing the key directory derives the same, and none
        of them ever stores or prints it."""
        label = b"chain-sts derived key\x00" + purpose.encode("utf-8")
        return hmac.new(self._key, label, hashlib.sha256).digest()

    def match(self, secret: str, credentials: Iterable[CredentialView]) -> CredentialView | None:
        """The credential whose hash matches ``secret``; every candidate is compared."""
        candidate = self.hash(secret)
        found: CredentialView | None = None
        compared = False
        for cred in credentials:
            compared = True
            if hmac.compare_digest(candidate, cred.secret_hash or _DECOY):
                found = cred
        if not compared:
            hmac.compare_digest(candidate, _DECOY)
        return found


def load_hash_key(keys_dir: Path, create: bool) -> bytes:
    """Read the hashing key; in development create it (0600) when missing."""
    path = keys_dir / HASH_KEY_FILE
    if not path.exists():
        if not create:
            raise KeyFileError(f"{path}: credential hashing key missing")
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path}: credential hashing key is readable by others (chmod 600)")
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise KeyFileError(f"{path}: credential hashing key must be hex") from None
