"""Everything a running STS holds for its lifetime, built once at start from the settings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from sts.core.clock import Clock, SystemClock
from sts.core.jwks import JwksCache
from sts.core.keys import KeyFileError, KeyStore, generate_key
from sts.core.secrets import SecretHasher, load_hash_key
from sts.core.settings import Settings, SettingsError
from sts.oauth.server import ChainAuthorizationServer
from sts.store.db import create_engine


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    keys: KeyStore
    hasher: SecretHasher
    clock: Clock
    server: ChainAuthorizationServer

    def close(self) -> None:
        self.engine.dispose()


def ensure_dev_keys(settings: Settings) -> None:
    """Development only: create the key directory and a first signing key if missing."""
    if settings.is_production:
        return
    keys_dir = settings.keys_dir
    if not keys_dir.is_dir() or not any(keys_dir.glob("*.pem")):
        generate_key(keys_dir, settings.signing_alg)


def build_runtime(
    settings: Settings, clock: Clock | None = None, engine: Engine | None = None
) -> Runtime:
    """Load keys and open the registry; raise a clear error if either is unusable."""
    ensure_dev_keys(settings)
    keys = KeyStore.for_settings(settings)
    hasher = SecretHasher(load_hash_key(settings.keys_dir, create=not settings.is_production))
    clock = clock or SystemClock()
    jwks_cache = JwksCache(settings.jwks_fetch_timeout, settings.jwks_cache_seconds)
    engine = engine or create_engine(settings.database_url, hide_parameters=True)
    server = ChainAuthorizationServer(settings, keys, hasher, jwks_cache)
    return Runtime(settings, engine, keys, hasher, clock, server)


def preflight() -> str | None:
    """Why this STS cannot start (its settings, its signing keys, its credential hashing
    key), in one line; ``None`` when it can. A server runs this once before its workers."""
    try:
        settings = Settings.load()
        ensure_dev_keys(settings)
        KeyStore.for_settings(settings).ring.signing_key(int(time.time()))
        load_hash_key(settings.keys_dir, create=not settings.is_production)
    except (SettingsError, KeyFileError) as exc:
        return str(exc)
    return None


def schema_ready(engine: Engine) -> bool:
    return bool(inspect(engine).has_table("alembic_version"))
