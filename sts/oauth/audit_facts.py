"""The facts an endpoint learns about a request, for its audit event (DESIGN §5.10, §8).

One immutable value that the pipeline's runner rebinds after each step, so a denial is
recorded with exactly what was established before the step that refused. Facts may echo the
client's input (the client_id it attempted), so a value shaped like a credential (a client
that swapped its id and secret, or pasted a token) is masked on the way out: it reaches
neither the audit trail nor the logs (DESIGN §6, §9). Masking is done only for a denial, the
one place these facts are written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sts.core.errors import StsError
from sts.core.logs import redact
from sts.core.ports import AuditRecord

#: Longest client id echoed into the audit trail from a request (a registered one is shorter).
MAX_ECHOED_CLIENT_ID = 255


@dataclass(frozen=True)
class AuditFacts:
    grant_type: str | None = None
    client_id: str | None = None
    credential_id: str | None = None
    subject: str | None = None
    parent_jti: str | None = None
    txn: str | None = None
    target: str | None = None
    scope: str | None = None
    rule_id: str | None = None
    chain: tuple[str, ...] = ()

    def but(self, **changes: Any) -> AuditFacts:
        """These facts with some added or replaced."""
        return dataclasses.replace(self, **changes)

    def masked(self) -> AuditFacts:
        """These facts as they may be written: credential-shaped values masked, an echoed
        client id cut to the longest a registered one can be."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                changes[f.name] = redact(value)
            elif isinstance(value, tuple):
                changes[f.name] = tuple(redact(v) for v in value)
        client_id = changes.get("client_id")
        if client_id is not None:
            changes["client_id"] = client_id[:MAX_ECHOED_CLIENT_ID]
        return dataclasses.replace(self, **changes)

    def denial(self, err: StsError, *, at: int, request_id: str, event: str) -> AuditRecord:
        """The audit event of a refusal, from the masked facts."""
        facts = self.masked()
        return AuditRecord(
            at=at,
            event=event,
            decision="denied",
            reason=err.reason,
            request_id=request_id,
            client_id=facts.client_id,
            credential_id=facts.credential_id,
            subject=facts.subject,
            target=facts.target,
            scope=facts.scope,
            parent_jti=facts.parent_jti,
            txn=facts.txn,
            rule_id=facts.rule_id,
            chain=facts.chain,
            detail={"error": err.error, "grant_type": facts.grant_type},
        )


class Denied(Exception):
    """A refusal together with the facts established before it, for the audit event."""

    def __init__(self, error: StsError, facts: AuditFacts) -> None:
        super().__init__(error.reason)
        self.error = error
        self.facts = facts
