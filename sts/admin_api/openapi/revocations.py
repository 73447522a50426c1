"""Revocations: a token, an NHI, a credential, a rule, an issuer or a transaction, with every
token derived from it; or, as a dry run, only the blast radius."""

from __future__ import annotations

from sts.admin_api.openapi.common import (
    ADMIN,
    AUDIT,
    BOOL,
    INT,
    OPT_INT,
    PREFIX,
    REVOKE,
    STR,
    STRINGS,
    Schema,
    admin_op,
    described,
    enum,
    obj,
    response,
    text,
)
from sts.store.revocation import KINDS

TAG = "revocations"
TAGS = [{"name": TAG, "description": "Admin: revoke and see the blast radius."}]


def schemas() -> dict[str, Schema]:
    return {
        "RevocationResult": obj(
            {
                "kind": enum(KINDS),
                "target": STR,
                "dry_run": BOOL,
                "tokens": described(INT, "Live tokens revoked (or, dry run, that would be)."),
                "transactions": INT,
                "jtis": described(STRINGS, "The first 1000 of them."),
                "jtis_listed": INT,
                "revocation_id": OPT_INT,
            }
        ),
        "RevocationCreate": obj(
            {
                "kind": enum(KINDS),
                "target": text(
                    2048, 1, description="jti, NHI name, credential id, rule id, issuer or txn"
                ),
                "reason": text(1000),
                "dry_run": described(BOOL, "Only report the blast radius."),
            },
            ["kind", "target"],
        ),
    }


def paths() -> dict[str, Schema]:
    return {
        f"{PREFIX}/revocations": {
            "post": admin_op(
                TAG,
                "createRevocation",
                "Revoke a token, NHI, credential, rule, issuer or transaction",
                (ADMIN, REVOKE, AUDIT),
                {
                    "201": response("RevocationResult", "Revoked, with every derived token."),
                    "200": response("RevocationResult", "Dry run: the blast radius."),
                },
                body="RevocationCreate",
                not_found=True,
                description="Revokes the target and every live token derived from it, at any "
                "depth. `dry_run` changes nothing and reports what would die. `sts:audit` "
                "may only dry-run. An unknown target is a 404 naming its kind.",
            ),
        },
    }
