"""The last steps of every grant: sign, record, respond (DESIGN §5.9-5.10).

The lineage row and the audit event are written in the request's transaction; the caller
commits it before the answer leaves, so no token exists without its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sts.core.ports import AuditRecord, IssuedRecord
from sts.core.response import JSON_NO_STORE, Response

if TYPE_CHECKING:
    from sts.core.keys import KeyStore
    from sts.core.ports import LineageStore
    from sts.oauth.rfc6749.client_auth import Authenticated
    from sts.oauth.rfc9068 import AccessToken


@dataclass(frozen=True)
class Provenance:
    """Where an issued token comes from, for its lineage row."""

    grant_type: str
    parent_jti: str | None
    subject_issuer: str
    rule_id: str | None
    chain: tuple[str, ...]
    #: The actor token of an exchange: our own token's ``jti``, or its trusted issuer.
    actor_jti: str | None = None
    actor_issuer: str | None = None


def issue(
    token: AccessToken,
    origin: Provenance,
    by: Authenticated,
    *,
    keys: KeyStore,
    store: LineageStore,
    request_id: str,
    extra: dict[str, Any],
    nonce: str | None = None,
) -> Response:
    """Sign, record lineage and the audit event (same transaction), and respond. A token
    bound to a DPoP key is a ``DPoP`` token (RFC 9449 §5); ``nonce``, when the STS asks for
    nonces, is the next one to use (§8.2)."""
    lineage = IssuedRecord(
        jti=token.jti,
        parent_jti=origin.parent_jti,
        txn=token.txn,
        grant_type=origin.grant_type,
        subject=token.sub,
        subject_issuer=origin.subject_issuer,
        actor_id=by.client.id,
        client_id=by.client.client_id,
        credential_id=by.credential_id,
        target=token.aud,
        scope=token.scope,
        rule_id=origin.rule_id,
        chain=origin.chain,
        issued_at=token.iat,
        expires_at=token.exp,
        actor_jti=origin.actor_jti,
        actor_issuer=origin.actor_issuer,
    )
    signed = token.sign(keys.ring.signing_key(token.iat))
    store.record_issued(
        lineage,
        AuditRecord(
            at=token.iat,
            event="token.issued",
            decision="allowed",
            reason="issued",
            request_id=request_id,
            client_id=lineage.client_id,
            credential_id=lineage.credential_id,
            subject=lineage.subject,
            target=lineage.target,
            scope=lineage.scope,
            jti=lineage.jti,
            parent_jti=lineage.parent_jti,
            txn=lineage.txn,
            rule_id=lineage.rule_id,
            chain=lineage.chain,
            detail=(
                {"grant_type": origin.grant_type, "exp": token.exp}
                if token.jkt is None
                else {"grant_type": origin.grant_type, "exp": token.exp, "cnf_jkt": token.jkt}
            ),
        ),
    )
    body: dict[str, Any] = {
        "access_token": signed,
        "token_type": "Bearer" if token.jkt is None else "DPoP",
        "expires_in": token.exp - token.iat,
        **extra,
    }
    if token.scope:
        body["scope"] = token.scope
    headers = list(JSON_NO_STORE)
    if nonce is not None:
        headers.append(("DPoP-Nonce", nonce))
    return 200, body, headers
