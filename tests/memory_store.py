"""An in-memory :class:`sts.core.ports.Store`: the protocol pipeline without a database.

It answers every question of the store contract from plain dictionaries, the way the SQL
store does (live credentials, a token's lineage with each hop's liveness facts, a revocation
reaching every descendant), and records what the pipeline asked of it, so the pipeline's
steps can be specified without SQL, locks or a schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sts.core.domain import Client, Target
from sts.core.lineage import rule_in_force
from sts.core.ports import (
    AuditRecord,
    ExchangeHints,
    Hop,
    IssuedRecord,
    IssuerConfig,
    RuleView,
)


@dataclass
class MemoryRule:
    view: RuleView
    status: str = "enabled"


@dataclass
class MemoryStore:
    clients: dict[str, Client] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)  # uri -> client_id
    issuers: dict[str, IssuerConfig] = field(default_factory=dict)
    rules: list[MemoryRule] = field(default_factory=list)
    issued: dict[str, IssuedRecord] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)  # jti -> revocation id
    events: list[AuditRecord] = field(default_factory=list)
    assertions: set[tuple[str, str]] = field(default_factory=set)
    dpop_proofs: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    #: What the pipeline announced, in order.
    expected: list[ExchangeHints] = field(default_factory=list)

    # -- registry, as tests set it up ------------------------------------------------------
    def add_client(self, client: Client) -> Client:
        self.clients[client.client_id] = client
        return client

    def add_rule(self, view: RuleView) -> None:
        self.rules.append(MemoryRule(view))

    def disable(self, client_id: str) -> None:
        self.clients[client_id] = replace(self.clients[client_id], status="disabled")

    # -- Store -----------------------------------------------------------------------------
    def expect(self, hints: ExchangeHints, now: int) -> None:
        self.expected.append(hints)

    def client(self, client_id: str, now: int, source: str = "") -> Client | None:
        found = self.clients.get(client_id)
        if found is None:
            return None
        failures, since = self.failures.get((client_id, source), (0, 0))
        return replace(found, failures=failures, failures_since=since)

    def record_auth_failure(self, client_id: str, source: str, now: int, window: int) -> None:
        if client_id in self.clients:
            failures, since = self.failures.get((client_id, source), (0, now))
            fresh = since < now - window
            self.failures[(client_id, source)] = (1, now) if fresh else (failures + 1, since)

    def clear_auth_failures(self, client_id: str, source: str) -> None:
        self.failures.pop((client_id, source), None)

    def remember_assertion(self, client_id: str, jti: str, expires_at: int, now: int) -> bool:
        if (client_id, jti) in self.assertions:
            return False
        self.assertions.add((client_id, jti))
        return True

    def remember_dpop_proof(self, jkt: str, jti: str, expires_at: int, now: int) -> bool:
        seen = self.dpop_proofs.get((jkt, jti))
        if seen is not None and seen >= now:
            return False
        self.dpop_proofs[(jkt, jti)] = expires_at
        return True

    def _target(self, client: Client | None) -> Target | None:
        if client is None:
            return None
        return Target(client.id, client.client_id, client.sub, client.status, client.kind)

    def target_by_name(self, name: str) -> Target | None:
        return self._target(self.clients.get(name))

    def target_by_resource(self, uri: str) -> Target | None:
        name = self.resources.get(uri)
        return self._target(self.clients.get(name)) if name else None

    def nhi_by_sub(self, sub: str) -> Target | None:
        return self._target(next((c for c in self.clients.values() if c.sub == sub), None))

    def trusted_issuer(self, issuer: str) -> IssuerConfig | None:
        return self.issuers.get(issuer)

    def rules_for(self, actor_id: int, target_id: int, now: int) -> list[RuleView]:
        return [
            r.view
            for r in self.rules
            if r.status == "enabled"
            and r.view.actor_id == actor_id
            and (target_id in r.view.targets or None in r.view.targets)
            and (r.view.expires_at is None or r.view.expires_at > now)
        ]

    def _rule(self, rule_id: str | None) -> MemoryRule | None:
        return next((r for r in self.rules if r.view.id == rule_id), None)

    def lineage(self, jti: str, now: int) -> list[Hop]:
        hops, current = [], self.issued.get(jti)
        while current is not None:
            actor = next((c for c in self.clients.values() if c.id == current.actor_id), None)
            rule = self._rule(current.rule_id)
            hops.append(
                Hop(
                    jti=current.jti,
                    parent_jti=current.parent_jti,
                    txn=current.txn,
                    subject=current.subject,
                    subject_issuer=current.subject_issuer,
                    client_id=current.client_id,
                    actor_id=current.actor_id,
                    actor_status=actor.status if actor else None,
                    rule_id=current.rule_id,
                    rule_in_force=rule_in_force(
                        current.rule_id,
                        rule.status if rule else None,
                        rule.view.expires_at if rule else None,
                        now,
                    ),
                    revoked=current.jti in self.revoked,
                    chain=current.chain,
                    target=current.target,
                    scope=current.scope,
                    expires_at=current.expires_at,
                    grant_type=current.grant_type,
                )
            )
            current = self.issued.get(current.parent_jti) if current.parent_jti else None
        return hops

    def record_issued(self, record: IssuedRecord, event: AuditRecord) -> None:
        self.issued[record.jti] = record
        self.events.append(event)

    def audit(self, record: AuditRecord) -> None:
        self.events.append(record)

    def serialize_revocations(self) -> None:
        """One process, one thread: nothing to wait for."""

    def revoke_token(self, jti: str, now: int, by: str, reason: str) -> int:
        """The token, its descendants and what was minted with one as the actor token."""
        doomed, frontier = set(), {jti}
        while frontier:
            doomed |= frontier
            frontier = {
                r.jti
                for r in self.issued.values()
                if r.parent_jti in frontier or r.actor_jti in frontier
            } - doomed
        fresh = [j for j in sorted(doomed) if j not in self.revoked and j in self.issued]
        for j in fresh:
            self.revoked[j] = len(self.revoked) + 1
        return len(fresh)

    def revoked_since(
        self, cursor: tuple[int, str], alive_at: int, limit: int
    ) -> list[tuple[int, str, int]]:
        rows = sorted(
            (rid, jti, self.issued[jti].expires_at)
            for jti, rid in self.revoked.items()
            if self.issued[jti].expires_at > alive_at
        )
        return [r for r in rows if (r[0], r[1]) > cursor][:limit]
