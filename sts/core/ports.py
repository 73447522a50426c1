"""The storage interface the protocol core depends on (an adapter contract).

The token endpoint sees the registry only through :class:`Store`; ``sts.store.sql`` implements
it on one database connection whose transaction the request owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sts.core.domain import Client, Target


@dataclass(frozen=True)
class IssuedRecord:
    """A lineage row for one issued token (DESIGN §5.10)."""

    jti: str
    parent_jti: str | None
    txn: str
    grant_type: str
    subject: str
    subject_issuer: str
    actor_id: int | None
    client_id: str
    credential_id: str | None
    target: str
    scope: str
    rule_id: str | None
    chain: tuple[str, ...]
    issued_at: int
    expires_at: int
    #: The actor token it was minted with: our own token's ``jti``, or its trusted issuer.
    actor_jti: str | None = None
    actor_issuer: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit event. ``reason`` is the precise internal reason; never a token or secret."""

    at: int
    event: str
    decision: str
    reason: str = ""
    request_id: str = ""
    client_id: str | None = None
    credential_id: str | None = None
    subject: str | None = None
    target: str | None = None
    scope: str | None = None
    jti: str | None = None
    parent_jti: str | None = None
    txn: str | None = None
    rule_id: str | None = None
    chain: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IssuerConfig:
    """A trusted external issuer (DESIGN §3)."""

    issuer: str
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    algorithms: tuple[str, ...]
    audiences: tuple[str, ...]
    scope_mode: str  # cap | rule
    status: str


@dataclass(frozen=True)
class Hop:
    """One lineage row of a token's ancestry, with the liveness facts policy judges."""

    jti: str
    parent_jti: str | None
    txn: str
    subject: str
    subject_issuer: str
    client_id: str
    actor_id: int | None
    actor_status: str | None
    rule_id: str | None
    rule_in_force: bool
    revoked: bool
    chain: tuple[str, ...]
    target: str
    scope: str
    expires_at: int
    #: The grant that minted it (``client_credentials`` or the token-exchange URN).
    grant_type: str = ""


@dataclass(frozen=True)
class RuleView:
    """A delegation rule as policy sees it (DESIGN §5.5). ``targets`` holds NHI ids;
    ``None`` in it means ``*``."""

    id: str
    actor_id: int
    subject_type: str  # any | sub | issuer | kind
    subject_value: str
    upstream_sub: str | None
    scopes: frozenset[str]
    max_depth: int | None
    max_ttl: int | None
    expires_at: int | None
    targets: frozenset[int | None]
    #: For a ``sub`` rule, the trusted issuer the subject must come from; ``None``: the
    #: subject must be an NHI (a chain rooted at this STS). DESIGN §3: (issuer, ``sub``).
    subject_issuer: str | None = None
    #: Only a DPoP-bound request may mint under this rule (DESIGN §12).
    require_dpop: bool = False


@dataclass(frozen=True)
class ExchangeHints:
    """What one exchange is about to ask the store, as far as the form alone tells (every
    value is unverified: each step still checks its own)."""

    #: The client the request claims to be.
    client_id: str | None = None
    #: The subject token's issuer, when it is not this STS.
    issuer: str | None = None
    #: The one audience the request names, if it names exactly one.
    target: str | None = None
    #: This STS's own tokens (subject, actor) whose lineages will be walked.
    own_jtis: tuple[str, ...] = ()
    #: The address the request came from (its failed authentications are counted apart).
    source: str = ""


class ClientStore(Protocol):
    """Clients as the token endpoint authenticates them (DESIGN §5.1)."""

    def client(self, client_id: str, now: int, source: str = "") -> Client | None:
        """The NHI with its credentials live at ``now``, or ``None``; its failed
        authentications are those from ``source`` (the address the request came from)."""

    def record_auth_failure(self, client_id: str, source: str, now: int, window: int) -> None:
        """Count a failed authentication of a registered client from a source in the
        current window."""

    def clear_auth_failures(self, client_id: str, source: str) -> None: ...

    def remember_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a client assertion ``jti`` (kept until ``expires_at``); ``False`` if it was
        seen before (a replay)."""

    def nhi_by_sub(self, sub: str) -> Target | None:
        """The NHI whose ``sub`` this is (a workload authenticating with its SPIFFE ID)."""

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None:
        """A trusted issuer (a SPIFFE trust domain vouching for a workload's SVID)."""


class DpopReplayStore(Protocol):
    """DPoP proofs seen (RFC 9449 §11.1), shared by every replica."""

    def remember_dpop_proof(self, jkt: str, jti: str, expires_at: int, now: int) -> bool:
        """Record a proof's ``jti`` for its key (kept until ``expires_at``); ``False`` if it
        was seen before (a replay)."""


class TargetStore(Protocol):
    """Registered NHIs as the next hop of a chain (DESIGN §3, §5.6)."""

    def target_by_name(self, name: str) -> Target | None: ...

    def target_by_resource(self, uri: str) -> Target | None: ...

    def nhi_by_sub(self, sub: str) -> Target | None: ...


class PolicyStore(Protocol):
    """What policy judges a chain by: trusted issuers and delegation rules (DESIGN §5.5)."""

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None: ...

    def rules_for(self, actor_id: int, target_id: int, now: int) -> list[RuleView]:
        """Enabled, unexpired rules of this actor that name this target (or ``*``)."""


class LineageStore(Protocol):
    """Every issued token's lineage (DESIGN §5.10)."""

    def lineage(self, jti: str, now: int) -> list[Hop]:
        """The token's lineage row and its ancestors', the token itself first."""

    def record_issued(self, record: IssuedRecord, event: AuditRecord) -> None:
        """The lineage row of an issued token and its audit event, together."""


class AuditStore(Protocol):
    def audit(self, record: AuditRecord) -> None: ...


class RevocationStore(Protocol):
    """Revocations as the RFC 7009 endpoint and the feed see them (DESIGN §7)."""

    def serialize_revocations(self) -> None:
        """Wait for any revocation in flight; hold the turn until this transaction ends."""

    def revoke_token(self, jti: str, now: int, by: str, reason: str) -> int:
        """Revoke a token and every token derived from it, ``by`` the client it was issued
        to; the number of tokens revoked. The caller writes the audit event."""

    def revoked_since(
        self, cursor: tuple[int, str], alive_at: int, limit: int
    ) -> list[tuple[int, str, int]]:
        """Revoked tokens still unexpired at ``alive_at``, after ``cursor``, as (revocation
        id, jti, exp), in order."""


@dataclass(frozen=True)
class ReportedToken:
    """The lineage row of a token a service reports accesses under (DESIGN §10)."""

    jti: str
    txn: str
    #: The token's audience: the only NHI that may report under it.
    target: str
    issued_at: int
    expires_at: int
    subject: str
    subject_issuer: str
    #: The token's actors, outermost first (as in its ``act`` claim).
    chain: tuple[str, ...]


@dataclass(frozen=True)
class AccessReport:
    """What the audience of a token did under it, as it reported (DESIGN §10). The report
    keeps the token's ``jti`` and ``txn`` so it outlives the lineage row."""

    jti: str
    txn: str
    reported_by: str
    subject: str
    subject_issuer: str
    chain: tuple[str, ...]
    resource: str
    action: str
    data_classes: tuple[str, ...]
    records: int | None
    bytes: int | None
    destination: str | None
    outcome: str | None
    at: int
    received_at: int
    request_id: str = ""


class AccessReportStore(Protocol):
    """Access reports (DESIGN §10), joined to the lineage by ``jti``."""

    def reported_tokens(self, jtis: list[str]) -> dict[str, ReportedToken]:
        """The lineage rows of these tokens, by ``jti``, in one lookup; a token this STS
        never issued (or whose row housekeeping removed) is absent."""

    def record_access_reports(self, reports: list[AccessReport]) -> None:
        """Store every report, in the caller's transaction."""


class ReportingStore(ClientStore, AccessReportStore, AuditStore, Protocol):
    """What the access-report endpoint needs: client authentication, the lineage of the
    reported tokens, the reports and the audit trail of refusals."""


class Store(
    ClientStore,
    DpopReplayStore,
    TargetStore,
    PolicyStore,
    LineageStore,
    AuditStore,
    RevocationStore,
    Protocol,
):
    """The store of one request, whose transaction the caller owns.

    Read-ahead and lock order are the store's business: the protocol says up front what an
    exchange will ask (:meth:`expect`), then asks each question in its own terms. Whatever the
    store fetches early, every lookup answers exactly as it would without the hints.
    """

    def expect(self, hints: ExchangeHints, now: int) -> None:
        """Prepare for the exchange these hints describe. The store must keep revocations
        safe: locks are taken in the order a revocation takes them (transaction roots before
        any issuer or rule), and the roots of ``own_jtis`` are locked only when a lineage is
        first asked for, which the protocol does only for an authenticated client."""
