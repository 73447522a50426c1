"""The registry schema (DESIGN §3, §5.10, §7, §8) as typed SQLAlchemy 2 models.

The models declare the schema (Alembic reads it) and name the columns; queries are Core
statements executed on a connection the request owns, so the hot path never hydrates ORM
objects. Times are integer seconds since the epoch, like the JWT claims they mirror. Every
lookup made on the token endpoint's hot path is backed by an index or a primary key.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(64)
Name = String(255)
Uri = String(2048)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Nhi(Base):
    """A non-human identity: client, actor and target at once."""

    __tablename__ = "nhi"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(Name, unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # service | agent | workload
    sub: Mapped[str] = mapped_column(Uri, unique=True)
    owner: Mapped[str] = mapped_column(Name, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    status_reason: Mapped[str] = mapped_column(Text, default="")
    #: Space-separated scopes the NHI may request for itself (client_credentials).
    scopes: Mapped[str] = mapped_column(Text, default="")
    #: Space-separated grant types it may use.
    grants: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class NhiResource(Base):
    """RFC 8707 resource URIs naming an NHI as a target."""

    __tablename__ = "nhi_resource"

    uri: Mapped[str] = mapped_column(Uri, primary_key=True)
    nhi_id: Mapped[int] = mapped_column(ForeignKey("nhi.id"), index=True)


class Credential(Base):
    """A client credential. Several may be live per NHI so rotation needs no downtime."""

    __tablename__ = "credential"
    __table_args__ = (Index(None, "nhi_id", "status"),)

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    nhi_id: Mapped[int] = mapped_column(ForeignKey("nhi.id"))
    type: Mapped[str] = mapped_column(String(16))  # secret | jwks | jwks_uri
    #: Keyed hash of a generated secret (``hmac-sha256$<hex>``); never the secret.
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(Uri, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: A rotated-out credential keeps working until this time (None: no expiry).
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class TrustedIssuer(Base):
    """An external issuer whose JWTs are accepted as subject tokens."""

    __tablename__ = "trusted_issuer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(Uri, unique=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(Uri, nullable=True)
    #: Space-separated allowed JWS algorithms.
    algorithms: Mapped[str] = mapped_column(String(255))
    #: Audience values its tokens must carry (any one of them); empty list: no check.
    audiences: Mapped[list[Any]] = mapped_column(default=list)
    #: ``cap``: its scopes cap the exchanged scope; ``rule``: only the rule decides.
    scope_mode: Mapped[str] = mapped_column(String(16), default="rule")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    created_at: Mapped[int] = mapped_column(BigInteger)


class DelegationRule(Base):
    """Who (actor) may act for whom (subject) toward what (targets), DESIGN §5.5."""

    __tablename__ = "delegation_rule"
    __table_args__ = (Index(None, "actor_id", "status"),)

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("nhi.id"))
    #: ``any`` | ``sub`` | ``issuer`` | ``kind``, and the value it compares with.
    subject_type: Mapped[str] = mapped_column(String(16), default="any")
    subject_value: Mapped[str] = mapped_column(Uri, default="")
    #: For a ``sub`` rule, the trusted issuer the subject must come from; NULL: the subject
    #: must be an NHI (a chain rooted at this STS).
    subject_issuer: Mapped[str | None] = mapped_column(Uri, nullable=True)
    upstream_id: Mapped[int | None] = mapped_column(ForeignKey("nhi.id"), nullable=True)
    scopes: Mapped[str] = mapped_column(Text)
    max_depth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="enabled")  # enabled | disabled
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Only a DPoP-bound request (RFC 9449) may mint a token under this rule (DESIGN §12).
    require_dpop: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class RuleTarget(Base):
    """A rule's targets; ``target_id`` NULL means ``*`` (any registered target)."""

    __tablename__ = "rule_target"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("delegation_rule.id"), index=True)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("nhi.id"), nullable=True)


class IssuedToken(Base):
    """Lineage of every token this STS issued (DESIGN §5.10)."""

    __tablename__ = "issued_token"

    jti: Mapped[str] = mapped_column(Id, primary_key=True)
    parent_jti: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    txn: Mapped[str] = mapped_column(Id, index=True)
    grant_type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Uri)
    subject_issuer: Mapped[str] = mapped_column(Uri, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("nhi.id"), nullable=True, index=True)
    client_id: Mapped[str] = mapped_column(Name, index=True)
    credential_id: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    #: The token's ``aud``: revoking or disabling that NHI reaches it (DESIGN §7).
    target: Mapped[str] = mapped_column(Uri, index=True)
    scope: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    #: The actor token the exchange was made with: our own token's ``jti``, or (for one from a
    #: trusted issuer) that issuer; revoking either reaches this token (DESIGN §7).
    actor_jti: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    actor_issuer: Mapped[str | None] = mapped_column(Uri, nullable=True, index=True)
    #: Actor client_ids (or external subs), outermost first, as in the token's ``act``.
    chain: Mapped[list[Any]] = mapped_column(default=list)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The revocation that killed it: the revocation feed's cursor runs over this column.
    revocation_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class Revocation(Base):
    """A revocation of a token, NHI, credential, rule, issuer or transaction (DESIGN §7)."""

    __tablename__ = "revocation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Uri)
    reason: Mapped[str] = mapped_column(Text, default="")
    revoked_by: Mapped[str] = mapped_column(Name, default="")
    created_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AuditEvent(Base):
    """Append-only audit trail (DESIGN §8). Never holds a token or a secret."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    request_id: Mapped[str] = mapped_column(Id, default="")
    event: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # allowed | denied | done
    reason: Mapped[str] = mapped_column(Text, default="")
    client_id: Mapped[str | None] = mapped_column(Name, nullable=True, index=True)
    credential_id: Mapped[str | None] = mapped_column(Id, nullable=True)
    subject: Mapped[str | None] = mapped_column(Uri, nullable=True, index=True)
    target: Mapped[str | None] = mapped_column(Uri, nullable=True)
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    jti: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    parent_jti: Mapped[str | None] = mapped_column(Id, nullable=True)
    txn: Mapped[str | None] = mapped_column(Id, nullable=True, index=True)
    rule_id: Mapped[str | None] = mapped_column(Id, nullable=True)
    chain: Mapped[list[Any]] = mapped_column(default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ClientAssertionJti(Base):
    """``jti``s of accepted client assertions, kept until they expire (RFC 7523 §3 item 7)."""

    __tablename__ = "client_assertion_jti"

    client_id: Mapped[str] = mapped_column(Name, primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AuthFailure(Base):
    """Failed client authentications per registered client and source (the address the
    request came from) in the current window, shared by every STS process so throttling holds
    across replicas, and never locks a client out from a source that has not failed."""

    __tablename__ = "auth_failure"

    client_id: Mapped[str] = mapped_column(Name, primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer)


class AccessReportRow(Base):
    """What the audience of a token did under it, as it reported (DESIGN §10).

    No foreign key to the lineage: a report keeps the token's ``jti`` and ``txn`` itself, so
    housekeeping of lineage rows (``sts gc``) and revocations never lose it."""

    __tablename__ = "access_report"
    __table_args__ = (Index(None, "resource", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    jti: Mapped[str] = mapped_column(Id, index=True)
    txn: Mapped[str] = mapped_column(Id, index=True)
    #: The NHI that reported: the token's audience.
    reported_by: Mapped[str] = mapped_column(Name)
    #: The chain's subject and the token's actors (outermost first), copied from the lineage
    #: so "which chains touched this resource" is answered by this table alone.
    subject: Mapped[str] = mapped_column(Uri)
    subject_issuer: Mapped[str] = mapped_column(Uri)
    chain: Mapped[list[Any]] = mapped_column(default=list)
    resource: Mapped[str] = mapped_column(Uri)
    action: Mapped[str] = mapped_column(String(64))
    data_classes: Mapped[list[Any]] = mapped_column(default=list)
    records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    destination: Mapped[str | None] = mapped_column(Uri, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: When the access happened (as reported), and when the STS received the report.
    at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(Id, default="")


class DpopProofJti(Base):
    """``jti``s of accepted DPoP proofs per key thumbprint, kept while their ``iat`` is within
    the proof window (RFC 9449 §11.1): the primary key makes a replay fail on every replica."""

    __tablename__ = "dpop_proof_jti"

    jkt: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class SsfStream(Base):
    """An SSF event stream (DESIGN §11): a receiver NHI (its ``owner``) and how it gets events.

    The delivery columns (``lease_until``, ``next_attempt_at``, ``attempts``, ``last_error``)
    belong to the push worker: one worker at a time holds a stream's lease, and a failed push
    holds the whole stream back (events reach a receiver in order) until ``next_attempt_at``.
    """

    __tablename__ = "ssf_stream"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    owner: Mapped[str] = mapped_column(Name, index=True)
    method: Mapped[str] = mapped_column(String(32))
    endpoint_url: Mapped[str | None] = mapped_column(Uri, nullable=True)
    #: Sent as the ``Authorization`` header of each push (RFC 8935 §2); never shown or logged.
    authorization_header: Mapped[str | None] = mapped_column(Text, nullable=True)
    events_requested: Mapped[list[Any]] = mapped_column(default=list)
    #: ``session-revoked`` is among the events delivered: revocations are written for it.
    revocations: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="enabled")  # enabled|paused|disabled
    status_reason: Mapped[str] = mapped_column(Text, default="")
    #: Granted by an administrator: events about every token, not only those addressed to the
    #: owner or to the NHIs it owns.
    all_subjects: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    lease_until: Mapped[int] = mapped_column(BigInteger, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_verification_at: Mapped[int] = mapped_column(BigInteger, default=0)
    #: When the receiver last took an event (a 2xx push, an acknowledged poll).
    last_delivery_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)


class SsfOutbox(Base):
    """A revocation a stream must hear of, written in the revocation's own transaction: one
    row per stream and revocation, whatever the number of tokens. The delivery side turns it
    into signed SETs (:class:`SsfEvent`) and deletes it, in one transaction."""

    __tablename__ = "ssf_outbox"
    __table_args__ = (Index(None, "stream_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    stream_id: Mapped[str] = mapped_column(ForeignKey("ssf_stream.id"))
    revocation_id: Mapped[int] = mapped_column(Integer)
    #: CAEP ``initiating_entity``: ``admin`` or ``user`` (a client revoking its own token).
    initiator: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)


class SsfEvent(Base):
    """A signed SET waiting for its receiver: pushed in ``id`` order, or returned by a poll
    until acknowledged. Deleted once delivered; ``jti`` is the same if it is built again."""

    __tablename__ = "ssf_event"
    __table_args__ = (Index(None, "stream_id", "id"), Index(None, "stream_id", "jti", unique=True))

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    stream_id: Mapped[str] = mapped_column(ForeignKey("ssf_stream.id"))
    jti: Mapped[str] = mapped_column(Id)
    set_jwt: Mapped[str] = mapped_column(Text)
    #: When what it reports happened (the revocation's time): delivery lag runs from here.
    created_at: Mapped[int] = mapped_column(BigInteger)
