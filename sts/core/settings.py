"""Typed settings: ``STS_*`` environment variables over an optional TOML file.

Every setting has one documented default here (the README's configuration reference is
generated from the same table). Settings are validated once, at start: a bad value refuses to
boot with a :class:`SettingsError` that names the setting, never later in a request.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "STS_"
#: ``STS_*`` variables that are not settings: the config file's path, and the test suite's
#: own knobs. Any other unknown ``STS_*`` variable is a typo, refused at start.
NOT_SETTINGS = ("STS_CONFIG_FILE",)
NOT_SETTINGS_PREFIXES = ("STS_TEST_", "STS_FUZZ_")
DEFAULT_CONFIG_FILE = Path("config/sts.toml")
SIGNING_ALGORITHMS = ("ES256", "EdDSA", "RS256")
#: How long HTTP caches may keep ``/jwks.json`` (its ``Cache-Control: max-age``), seconds.
JWKS_MAX_AGE = 60
#: Longest stage a new signing key may be given, seconds.
MAX_KEY_STAGE_SECONDS = 7 * 86400


class SettingsError(Exception):
    """A setting is missing, malformed or inconsistent. The message names it."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class Settings:
    """Chain STS configuration. Field names are the setting names without ``STS_``."""

    #: ``development`` generates missing keys and allows http issuers; ``production`` does not.
    env: str = "development"
    #: The issuer identifier (RFC 8414 §2): the ``iss`` of every token and the metadata base.
    issuer: str = "http://127.0.0.1:8000"
    #: SQLAlchemy URL of the registry. SQLite (embedded) or ``postgresql+psycopg://``.
    database_url: str = "sqlite:///var/sts.db"
    #: Directory of PEM signing keys (and the credential hashing key).
    keys_dir: Path = Path("keys")
    #: Algorithm of keys generated on first run: ES256, EdDSA or RS256.
    signing_alg: str = "ES256"
    #: Default lifetime of an issued token, seconds (DESIGN §5.8).
    token_ttl: int = 300
    #: Global maximum lifetime of an issued token, seconds.
    max_token_ttl: int = 3600
    #: Clock skew tolerated on exp/nbf/iat of incoming JWTs, seconds.
    leeway: int = 30
    #: The largest leeway any verifier of this STS's tokens applies, seconds (the SDK's is
    #: 30): a revoked token stays on the revocation feed until its ``exp`` plus this.
    verifier_leeway: int = 60
    #: Longest lifetime accepted for a ``private_key_jwt`` client assertion, seconds (RFC 7523
    #: §3): its ``jti`` is kept until it expires, so a far ``exp`` is refused.
    client_assertion_max_lifetime: int = 300
    #: How long after a token's ``exp`` its audience may still report what it did under it
    #: (``POST /access-reports``, DESIGN §10), seconds: room for a service's report queue to
    #: drain after an outage of the STS.
    access_report_grace: int = 3600
    #: Global cap on ``act`` nesting depth of a minted token (a rule may lower it).
    max_chain_depth: int = 5
    #: Failed authentications of one client within the window before it is throttled.
    auth_failure_limit: int = 10
    #: The brute-force window, seconds: a throttled client may try again when it ends.
    auth_failure_window: int = 300
    #: Proxies whose ``X-Forwarded-For`` is believed, comma-separated addresses or networks
    #: (``10.0.0.0/8, 192.0.2.7``); a request's source is then the last address before them.
    trusted_proxies: str = ""
    #: How long lineage rows are kept after their token expired (``sts gc``), days.
    lineage_retention_days: int = 30
    #: Largest accepted request body, bytes.
    max_request_bytes: int = 65536
    #: Largest accepted single token (subject, actor, client assertion), bytes.
    max_token_bytes: int = 16384
    #: How often the key directory is checked for a rotated key, seconds.
    keys_reload_seconds: int = 5
    #: How long a new signing key is published before it signs, seconds: longer than any
    #: verifier caches the JWKS (HTTP caches up to ``JWKS_MAX_AGE``, the SDK's 300 s) plus
    #: ``keys_reload_seconds``, so no verifier meets a token signed by a key it does not know.
    key_stage_seconds: int = 600
    #: Timeout for fetching a remote JWKS (client or trusted issuer), seconds.
    jwks_fetch_timeout: float = 3.0
    #: How long a fetched JWKS is cached, seconds.
    jwks_cache_seconds: int = 300
    #: Seconds clients are told to wait when the registry is unreachable.
    retry_after_seconds: int = 5
    #: Log level of the ``sts`` loggers.
    log_level: str = "INFO"
    #: Log format: ``json`` (one JSON object a line, the STS and its HTTP server alike) or
    #: ``text`` (the same fields, for a person at a terminal).
    log_format: str = "json"
    #: ``/metrics``: ``protected`` (a bearer with an admin scope, or ``metrics_token``),
    #: ``open`` (anyone who reaches it: behind a private network only) or ``off`` (served only
    #: on ``metrics_listen``, if set).
    metrics: str = "protected"
    #: A static bearer token a Prometheus scraper may present at ``/metrics`` (empty: none).
    metrics_token: str = ""
    #: ``host:port`` of a separate, unprotected metrics listener (empty: none); under a
    #: multi-process server the first worker to bind it serves every worker's metrics.
    metrics_listen: str = ""
    #: Create the schema and a demo registry on start when the database is empty (dev only).
    demo_registry: bool = False
    #: Production runs on PostgreSQL; an embedded SQLite file must be asked for explicitly.
    allow_sqlite_in_production: bool = False
    #: Worker processes of ``sts serve``; 0 picks two per CPU on PostgreSQL, one on SQLite.
    http_workers: int = 0
    #: Seconds a client has to send a request's headers before its connection is closed.
    http_header_timeout: int = 10
    #: Seconds a client has to send a request's body; a slower one is answered 408.
    http_body_timeout: int = 10
    #: Keep connections open between requests (HTTP/1.1 keep-alive).
    http_keepalive: bool = True
    #: How old a DPoP proof's ``iat`` may be, seconds (RFC 9449 §4.3 item 11); its ``jti`` is
    #: remembered this long (plus the leeway), so a replay within the window is refused.
    dpop_proof_window: int = 60
    #: Require a server-provided nonce in every DPoP proof (RFC 9449 §8): a proof without a
    #: fresh one is answered ``use_dpop_nonce`` with a ``DPoP-Nonce`` header.
    dpop_require_nonce: bool = False
    #: How long a DPoP nonce stays good, seconds (nonces are stateless: every replica
    #: checks them with the same key).
    dpop_nonce_seconds: int = 300
    #: SSF push endpoints must be https; this lets a development STS push over plain http to
    #: a loopback address (refused in production).
    ssf_allow_http_loopback: bool = False
    #: Timeout of one SSF push (and of the reachability check at stream creation), seconds.
    ssf_push_timeout: float = 5.0
    #: Longest wait between two attempts to push to a receiver that fails, seconds (the wait
    #: doubles from 1 s up to this).
    ssf_retry_max_seconds: int = 300
    #: Most revoked tokens of one chain named by one SET (an ``aliases`` subject); 1 makes one
    #: SET per token.
    ssf_set_max_tokens: int = 500

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """``trusted_proxies`` parsed (raises ``ValueError`` when malformed)."""
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ip_network(p, strict=False) for p in parts if p)

    @property
    def token_endpoint(self) -> str:
        return self.issuer.rstrip("/") + "/token"

    def validate(self) -> Settings:
        """Check every setting; raise :class:`SettingsError` naming the first bad one."""
        if self.env not in {"development", "production"}:
            raise SettingsError("STS_ENV must be 'development' or 'production'")
        parts = urlsplit(self.issuer)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise SettingsError("STS_ISSUER must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise SettingsError("STS_ISSUER must not have a query or fragment (RFC 8414 §2)")
        if self.is_production and parts.scheme != "https":
            raise SettingsError("STS_ISSUER must use https in production")
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise SettingsError("STS_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        if (
            self.is_production
            and self.database_url.startswith("sqlite")
            and not self.allow_sqlite_in_production
        ):
            raise SettingsError(
                "STS_DATABASE_URL is SQLite in production: use PostgreSQL, "
                "or set STS_ALLOW_SQLITE_IN_PRODUCTION=true"
            )
        if self.signing_alg not in SIGNING_ALGORITHMS:
            raise SettingsError(f"STS_SIGNING_ALG must be one of {', '.join(SIGNING_ALGORITHMS)}")
        for name in (
            "token_ttl",
            "max_token_ttl",
            "max_chain_depth",
            "max_request_bytes",
            "max_token_bytes",
            "keys_reload_seconds",
            "jwks_cache_seconds",
            "retry_after_seconds",
            "lineage_retention_days",
            "auth_failure_limit",
            "auth_failure_window",
            "client_assertion_max_lifetime",
            "dpop_proof_window",
            "dpop_nonce_seconds",
            "ssf_retry_max_seconds",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"STS_{name.upper()} must be a positive integer")
        if self.leeway < 0 or self.leeway > 300:
            raise SettingsError("STS_LEEWAY must be between 0 and 300 seconds")
        if not self.leeway <= self.verifier_leeway <= 3600:
            raise SettingsError("STS_VERIFIER_LEEWAY must be between STS_LEEWAY and 3600 seconds")
        if not 0 <= self.access_report_grace <= 7 * 86400:
            raise SettingsError("STS_ACCESS_REPORT_GRACE must be between 0 and 604800 seconds")
        self._validate_key_stage()
        if self.token_ttl > self.max_token_ttl:
            raise SettingsError("STS_TOKEN_TTL must not exceed STS_MAX_TOKEN_TTL")
        if not 0 < self.jwks_fetch_timeout < math.inf:
            raise SettingsError("STS_JWKS_FETCH_TIMEOUT must be a positive number of seconds")
        if not 0 <= self.http_workers <= 64:
            raise SettingsError("STS_HTTP_WORKERS must be between 0 (automatic) and 64")
        if not 1 <= self.http_header_timeout <= 60:
            raise SettingsError("STS_HTTP_HEADER_TIMEOUT must be between 1 and 60 seconds")
        if not 1 <= self.http_body_timeout <= 300:
            raise SettingsError("STS_HTTP_BODY_TIMEOUT must be between 1 and 300 seconds")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("STS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        try:
            self.proxy_networks()
        except ValueError:
            raise SettingsError(
                "STS_TRUSTED_PROXIES must be comma-separated IP addresses or networks"
            ) from None
        if self.log_format not in {"json", "text"}:
            raise SettingsError("STS_LOG_FORMAT must be 'json' or 'text'")
        if self.metrics not in {"protected", "open", "off"}:
            raise SettingsError("STS_METRICS must be 'protected', 'open' or 'off'")
        if self.metrics_token and len(self.metrics_token) < 32:
            raise SettingsError("STS_METRICS_TOKEN must be at least 32 characters")
        if self.metrics_listen:
            host, _, port = self.metrics_listen.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SettingsError("STS_METRICS_LISTEN must be host:port")
        if self.demo_registry and self.is_production:
            raise SettingsError("STS_DEMO_REGISTRY is for development only")
        if self.ssf_allow_http_loopback and self.is_production:
            raise SettingsError("STS_SSF_ALLOW_HTTP_LOOPBACK is for development only")
        if not 0 < self.ssf_push_timeout <= 60:
            raise SettingsError("STS_SSF_PUSH_TIMEOUT must be between 0 and 60 seconds")
        if not 1 <= self.ssf_set_max_tokens <= 1000:
            raise SettingsError("STS_SSF_SET_MAX_TOKENS must be between 1 and 1000")
        return self

    def _validate_key_stage(self) -> None:
        if not 0 <= self.key_stage_seconds <= MAX_KEY_STAGE_SECONDS:
            raise SettingsError(
                f"STS_KEY_STAGE_SECONDS must be between 0 and {MAX_KEY_STAGE_SECONDS} seconds"
            )
        least = JWKS_MAX_AGE + self.keys_reload_seconds
        if self.is_production and self.key_stage_seconds < least:
            # Shorter, and a verifier still holding the JWKS from before the rotation (an HTTP
            # cache, a replica that has not rescanned the key directory) refuses valid tokens.
            raise SettingsError(
                f"STS_KEY_STAGE_SECONDS must be at least {least} seconds in production "
                f"(the JWKS cache time {JWKS_MAX_AGE} s plus STS_KEYS_RELOAD_SECONDS)"
            )

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings: defaults < config file < ``STS_*`` environment < ``overrides``.

        The config file is ``STS_CONFIG_FILE`` if set (it must then exist), else
        ``config/sts.toml`` if present.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or (
            Path(environ["STS_CONFIG_FILE"]) if "STS_CONFIG_FILE" in environ else None
        )
        if path is not None and not path.is_file():
            raise SettingsError(f"STS_CONFIG_FILE: {path} does not exist")
        if path is None and DEFAULT_CONFIG_FILE.is_file():
            path = DEFAULT_CONFIG_FILE
        if path is not None:
            values.update(_read_file(path))
        known = {ENV_PREFIX + f.name.upper(): f.name for f in fields(cls)}
        for key, value in environ.items():
            if key in known:
                values[known[key]] = value
            elif (
                key.startswith(ENV_PREFIX)
                and key not in NOT_SETTINGS
                and not key.startswith(NOT_SETTINGS_PREFIXES)
            ):
                raise SettingsError(f"unknown setting in the environment: {key[:64]}")
        values.update(overrides)
        return cls._coerce(values).validate()

    @classmethod
    def _coerce(cls, values: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown setting: {unknown[0]}")
        default = cls()
        out: dict[str, Any] = {}
        for name, raw in values.items():
            current = getattr(default, name)
            convert: Callable[[Any], Any] = type(current)
            if isinstance(current, Path):
                convert = Path
            elif isinstance(current, bool):
                convert = _bool if isinstance(raw, str) else bool
            elif isinstance(raw, bool):
                raise SettingsError(f"STS_{name.upper()} must not be true/false")
            elif isinstance(current, int) and isinstance(raw, float):
                # int(60.9) would silently truncate: an integer setting takes integers only.
                raise SettingsError(f"STS_{name.upper()} must be an integer")
            try:
                out[name] = convert(raw)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"STS_{name.upper()} is invalid: {exc}") from None
        return replace(default, **out)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc}") from None
    section = data.get("sts", data)
    if not isinstance(section, dict):
        raise SettingsError(f"config file {path}: [sts] must be a table")
    outside = sorted(set(data) - {"sts"}) if "sts" in data else []
    if outside:
        # A key above the [sts] header would otherwise be silently ignored.
        raise SettingsError(f"config file {path}: unknown setting outside [sts]: {outside[0]}")
    return dict(section)
