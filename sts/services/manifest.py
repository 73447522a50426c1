"""The registry as code: one YAML (or JSON) document of NHIs, trusted issuers and rules.

:func:`export` writes the registry as such a document: never a secret (an NHI's keys appear
as the JWKS or JWKS URI it authenticates with; its secrets not at all). :func:`apply` makes
the registry match a document, idempotently, in the caller's one transaction: it creates
what is missing, changes what differs, and with ``prune`` removes what the document does
not name, and returns the plan it carried out (``kubectl apply`` and Terraform plans read
the same way). With ``dry_run`` the plan is worked out on the real registry and rolled back.
A document that is malformed, or that the registry refuses, changes nothing, and the
refusal names the line it failed on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from sts.core.secrets import SecretHasher
from sts.core.token_types import CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from sts.services import issuers, nhis, rules
from sts.services.errors import Invalid, ServiceError
from sts.store.admin import AdminStore

VERSION = 1
#: Grants as a document says them.
GRANT_NAMES = {CLIENT_CREDENTIALS: "client_credentials", TOKEN_EXCHANGE: "token-exchange"}
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

NHI_FIELDS: dict[str, type] = {
    "name": str,
    "kind": str,
    "sub": str,
    "owner": str,
    "scope": str,
    "grants": list,
    "resources": list,
    "status": str,
    "jwks": dict,
    "jwks_uri": str,
}
ISSUER_FIELDS: dict[str, type] = {
    "issuer": str,
    "jwks": dict,
    "jwks_uri": str,
    "audiences": list,
    "algorithms": list,
    "scope_mode": str,
    "status": str,
}
RULE_FIELDS: dict[str, type] = {
    "id": str,
    "actor": str,
    "targets": list,
    "scope": str,
    "subject": str,
    "subject_issuer": str,
    "upstream": str,
    "max_depth": int,
    "max_ttl": int,
    "expires": str,
    "require_dpop": bool,
    "status": str,
}
SECTIONS_ALL: dict[str, tuple[str, dict[str, type]]] = {
    "nhis": ("name", NHI_FIELDS),
    "issuers": ("issuer", ISSUER_FIELDS),
    "rules": ("id", RULE_FIELDS),
}
REQUIRED = {"nhis": ("name", "kind"), "issuers": ("issuer",), "rules": ("actor", "targets")}
STATUSES = {"nhis": ("active", "disabled"), "issuers": ("active", "revoked")}


class ManifestError(Invalid):
    """A document refused, with the line (1-based) it failed on."""

    code = "invalid_document"

    def __init__(self, line: int | None, message: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(where + message, "document")
        self.line = line


# -- export ---------------------------------------------------------------------------------
def _iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nhi_entry(store: AdminStore, view: nhis.NhiView) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": view.client_id,
        "kind": view.kind,
        "sub": view.sub,
        "owner": view.owner,
        "scope": view.scopes,
        "grants": [GRANT_NAMES.get(g, g) for g in view.grants],
        "resources": view.resources,
        "status": view.status,
    }
    nhi_id = store.nhis.id_of(view.client_id)
    assert nhi_id is not None
    keys = [(jwks, uri) for jwks, uri in store.credentials.live_keys(nhi_id) if jwks or uri]
    if keys:  # the newest live keys; secrets are never exported
        jwks, uri = keys[-1]
        entry.update({"jwks": jwks} if jwks is not None else {"jwks_uri": uri})
    return entry


def _issuer_entry(store: AdminStore, issuer: str) -> dict[str, Any]:
    found = store.issuers.find(issuer)
    assert found is not None
    entry: dict[str, Any] = {"issuer": found.issuer}
    entry.update({"jwks": found.jwks} if found.jwks is not None else {"jwks_uri": found.jwks_uri})
    entry.update(
        audiences=found.audiences,
        algorithms=found.algorithms,
        scope_mode=found.scope_mode,
        status=found.status,
    )
    return entry


def _rule_entry(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rule["id"],
        "actor": rule["actor"],
        "targets": rule["targets"],
        "scope": rule["scope"],
        "subject": rule["subject"],
        "subject_issuer": rule["subject_issuer"],
        "upstream": rule["upstream"],
        "max_depth": rule["max_depth"],
        "max_ttl": rule["max_ttl"],
        "expires": _iso(rule["expires_at"]),
        "require_dpop": rule["require_dpop"],
        "status": rule["status"],
    }


def _all(page: Any) -> list[Any]:
    items, offset = [], 0
    while True:
        found, total = page(limit=1000, offset=offset)
        items += found
        offset += len(found)
        if not found or offset >= total:
            return items


def export(store: AdminStore) -> dict[str, Any]:
    """The whole registry as one document (never a secret)."""
    views = _all(lambda **p: nhis.list_nhis(store, **p))
    return {
        "version": VERSION,
        "nhis": [_nhi_entry(store, v) for v in views],
        "issuers": [_issuer_entry(store, i["issuer"]) for i in issuers.list_issuers(store)],
        "rules": [_rule_entry(r) for r in _all(lambda **p: rules.list_rules(store, **p))],
    }


def dump(document: dict[str, Any], fmt: str = "yaml") -> str:
    if fmt == "json":
        import json

        return json.dumps(document, indent=2) + "\n"
    header = "# Chain STS registry: sts registry apply -f FILE [--dry-run] [--prune]\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


# -- parse ----------------------------------------------------------------------------------
@dataclass
class Entry:
    """One entry of a section, its values and the line of the entry and of each field."""

    values: dict[str, Any]
    line: int
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, name: str | None) -> int:
        return self.lines.get(name or "", self.line)


@dataclass
class Document:
    nhis: list[Entry]
    issuers: list[Entry]
    rules: list[Entry]


def _plain(node: yaml.Node) -> Any:
    """A node as Python values (JSON's types only: YAML's dates and the like stay text)."""
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key, value in node.value:
            name = _plain(key)
            if not isinstance(name, str):
                raise ManifestError(key.start_mark.line + 1, "keys must be strings")
            if name in out:
                raise ManifestError(key.start_mark.line + 1, f"{name!r} given twice")
            out[name] = _plain(value)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag.endswith((":timestamp", ":binary", ":set", ":omap", ":pairs")):
        return node.value
    try:
        return yaml.safe_load(yaml.serialize(node))
    except yaml.YAMLError:
        return node.value


def _entry(section: str, node: yaml.Node) -> Entry:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise ManifestError(line, f"each entry of {section} must be a mapping")
    fields = SECTIONS_ALL[section][1]
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        name = _plain(key)
        at = key.start_mark.line + 1
        if name not in fields:
            raise ManifestError(at, f"{section}: unknown field {name!r}")
        if name in values:
            raise ManifestError(at, f"{section}: {name!r} given twice")
        plain: Any = _plain(value)
        expected = fields[name]
        if plain is not None and not (
            isinstance(plain, expected) and not (expected is int and isinstance(plain, bool))
        ):
            kind = {str: "a string", list: "a list", dict: "a mapping", int: "an integer"}
            raise ManifestError(at, f"{section}: {name} must be {kind[expected]}")
        if isinstance(plain, list) and not all(isinstance(v, str) for v in plain):
            raise ManifestError(at, f"{section}: {name} must be a list of strings")
        values[name], lines[name] = plain, at
    for required in REQUIRED[section]:
        if values.get(required) in (None, "", []):
            raise ManifestError(line, f"{section}: entry without {required!r}")
    status = values.get("status")
    allowed = STATUSES.get(section, ("enabled", "disabled"))
    if status is not None and status not in allowed:
        raise ManifestError(lines["status"], f"{section}: status must be {' or '.join(allowed)}")
    if "jwks" in values and "jwks_uri" in values:
        raise ManifestError(lines["jwks_uri"], f"{section}: give a JWKS or a JWKS URI, not both")
    if section == "rules" and values.get("id") is not None and not RULE_ID.fullmatch(values["id"]):
        raise ManifestError(lines["id"], "rules: id must be 1-64 letters, digits, '.', '_', '-'")
    return Entry(values, line, lines)


def parse(text: str) -> Document:
    """A document from YAML or JSON text; :class:`ManifestError` names the line at fault."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise ManifestError(None, f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ManifestError(
            mark.line + 1 if mark else None, f"not YAML or JSON: {exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError(None, f"not YAML or JSON: {exc}") from None
    if root is None:
        raise ManifestError(1, "the document is empty")
    if not isinstance(root, yaml.MappingNode):
        raise ManifestError(root.start_mark.line + 1, "the document must be a mapping")
    sections: dict[str, list[Entry]] = {"nhis": [], "issuers": [], "rules": []}
    version = None
    for key, value in root.value:
        name = _plain(key)
        at = key.start_mark.line + 1
        if name == "version":
            version = _plain(value)
            if version != VERSION:
                raise ManifestError(at, f"version must be {VERSION}")
            continue
        if name not in sections:
            raise ManifestError(at, f"unknown section {name!r} (nhis, issuers, rules, version)")
        if isinstance(value, yaml.ScalarNode) and _plain(value) is None:
            continue
        if not isinstance(value, yaml.SequenceNode):
            raise ManifestError(at, f"{name} must be a list")
        sections[name] = [_entry(name, item) for item in value.value]
    if version is None:
        raise ManifestError(1, f"the document needs 'version: {VERSION}'")
    for section, (key_name, _) in SECTIONS_ALL.items():
        seen: set[str] = set()
        for entry in sections[section]:
            key = entry.values.get(key_name)
            if key is None:
                continue
            if key in seen:
                raise ManifestError(entry.line_of(key_name), f"{section}: {key!r} given twice")
            seen.add(key)
    return Document(sections["nhis"], sections["issuers"], sections["rules"])


# -- apply ----------------------------------------------------------------------------------
@dataclass
class Plan:
    """What an apply did (or, on a dry run, would do)."""

    dry_run: bool
    changes: list[dict[str, Any]] = field(default_factory=list)
    #: Secrets generated for NHIs created without keys, shown once (never on a dry run).
    secrets: dict[str, str] = field(default_factory=dict)

    def add(self, action: str, kind: str, name: str, fields: list[str] | None = None) -> None:
        self.changes.append({"action": action, "kind": kind, "name": name, "fields": fields or []})

    def counts(self) -> dict[str, int]:
        return {
            a: sum(c["action"] == a for c in self.changes) for a in ("create", "update", "delete")
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changes": self.changes,
            "summary": self.counts(),
            "client_secrets": self.secrets,
        }

    def lines(self) -> list[str]:
        """The plan for people, Terraform-style: ``+`` create, ``~`` change, ``-`` remove."""
        sign = {"create": "+", "update": "~", "delete": "-"}
        out = [
            f"{sign[c['action']]} {c['kind']} {c['name']}"
            + (f" ({', '.join(c['fields'])})" if c["fields"] else "")
            for c in self.changes
        ]
        n = self.counts()
        verb = "would" if self.dry_run else "did"
        out.append(
            "No changes: the registry matches the document."
            if not self.changes
            else f"Plan ({verb} apply): {n['create']} to create, {n['update']} to change, "
            f"{n['delete']} to remove."
        )
        return out


@dataclass(frozen=True)
class _Context:
    store: AdminStore
    hasher: SecretHasher
    now: int
    admin: str
    plan: Plan


def _at(entry: Entry, fn: Any) -> Any:
    """Run a service call for ``entry``; its refusal names the entry's line."""
    try:
        return fn()
    except ManifestError:
        raise
    except ServiceError as exc:
        raise ManifestError(entry.line_of(exc.field), exc.message) from None


def _apply_issuer(ctx: _Context, entry: Entry) -> None:
    v = entry.values
    iss = v["issuer"]
    keys: dict[str, Any] = {"jwks": v.get("jwks"), "jwks_uri": v.get("jwks_uri")}
    settings: dict[str, Any] = {
        "audiences": v.get("audiences") or [],
        "algorithms": v.get("algorithms"),
        "scope_mode": v.get("scope_mode") or "rule",
    }
    common: dict[str, Any] = {"now": ctx.now, "admin": ctx.admin}
    if not ctx.store.issuers.exists(iss):
        _at(entry, lambda: issuers.add_issuer(ctx.store, issuer=iss, **keys, **settings, **common))
        ctx.plan.add("create", "issuer", iss)
        changed: list[str] = []
    else:
        _, changed = _at(
            entry,
            lambda: issuers.update_issuer(
                ctx.store,
                issuer=iss,
                **keys,
                **{
                    **settings,
                    "algorithms": settings["algorithms"] or list(issuers.DEFAULT_ALGORITHMS),
                },
                **common,
            ),
        )
    status = v.get("status") or "active"
    if issuers.get_issuer(ctx.store, iss)["status"] != status:
        if status == "active":
            issuers.enable_issuer(ctx.store, iss, **common)
        else:
            issuers.disable_issuer(ctx.store, iss, reason="registry apply", **common)
        changed.append("status")
    if changed:
        ctx.plan.add("update", "issuer", iss, changed)


def _apply_nhi(ctx: _Context, entry: Entry) -> None:
    v = entry.values
    name = v["name"]
    attrs: dict[str, Any] = {
        "kind": v["kind"],
        "owner": v.get("owner") or "",
        "sub": v.get("sub"),
        "scope": v.get("scope") or "",
        "grants": v.get("grants"),
        "resources": v.get("resources") or [],
        "jwks": v.get("jwks"),
        "jwks_uri": v.get("jwks_uri"),
    }
    common: dict[str, Any] = {"now": ctx.now, "admin": ctx.admin}
    if ctx.store.nhis.find(name) is None:
        _, secret = _at(
            entry, lambda: nhis.create_nhi(ctx.store, ctx.hasher, name=name, **attrs, **common)
        )
        if secret and not ctx.plan.dry_run:
            ctx.plan.secrets[name] = secret
        ctx.plan.add("create", "nhi", name)
        changed: list[str] = []
    else:
        attrs["sub"] = attrs["sub"] or name
        attrs["grants"] = attrs["grants"] or list(GRANT_NAMES.values())
        _, changed = _at(entry, lambda: nhis.update_nhi(ctx.store, name, **attrs, **common))
    status = v.get("status") or "active"
    if nhis.get_nhi(ctx.store, name).status != status:
        reason = "registry apply" if status == "disabled" else ""
        nhis.set_nhi_status(ctx.store, name, status=status, reason=reason, **common)
        changed.append("status")
    if changed:
        ctx.plan.add("update", "nhi", name, changed)


def _rule_args(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": v["actor"],
        "targets": v["targets"],
        "scope": v.get("scope") or "",
        "subject": v.get("subject") or "any",
        "subject_issuer": v.get("subject_issuer"),
        "upstream": v.get("upstream"),
        "max_depth": v.get("max_depth"),
        "max_ttl": v.get("max_ttl"),
        "expires": v.get("expires"),
        "require_dpop": bool(v.get("require_dpop") or False),
    }


def _apply_rule(ctx: _Context, entry: Entry, matched: set[str]) -> None:
    v = entry.values
    common: dict[str, Any] = {"now": ctx.now, "admin": ctx.admin}
    given: str | None = v.get("id")
    args = _rule_args(v)
    changed: list[str] = []
    rule_id: str
    if given is not None and ctx.store.rules.find(given) is not None:
        rule_id = given
        _, updated = _at(entry, lambda: rules.update_rule(ctx.store, rule_id, **args, **common))
        changed = ["terms"] if updated else []
    elif given is not None:
        rule_id = given
        _at(entry, lambda: rules.create_rule(ctx.store, rule_id=rule_id, **args, **common))
        ctx.plan.add("create", "rule", rule_id)
    else:
        found, created = _at(entry, lambda: rules.ensure_rule(ctx.store, **args, **common))
        rule_id = found["id"]
        if created or rule_id in matched:
            if not created:  # a second entry saying the same: a rule of its own
                rule_id = _at(entry, lambda: rules.create_rule(ctx.store, **args, **common))["id"]
            ctx.plan.add("create", "rule", rule_id)
    matched.add(rule_id)
    status = v.get("status") or "enabled"
    if rules.get_rule(ctx.store, rule_id)["status"] != status:
        if status == "enabled":
            rules.enable_rule(ctx.store, rule_id, **common)
        else:
            rules.disable_rule(ctx.store, rule_id, reason="registry apply", **common)
        changed.append("status")
    if changed:
        ctx.plan.add("update", "rule", rule_id, changed)


def _prune(ctx: _Context, doc: Document, matched: set[str]) -> None:
    """Remove what the document does not name: rules first (they name NHIs), then NHIs
    (never the administrator applying it: it would lock itself out), then issuers."""
    common: dict[str, Any] = {"now": ctx.now, "admin": ctx.admin}
    for rule in _all(lambda **p: rules.list_rules(ctx.store, **p)):
        if rule["id"] not in matched:
            rules.delete_rule(ctx.store, rule["id"], reason="registry apply --prune", **common)
            ctx.plan.add("delete", "rule", rule["id"])
    named = {e.values["name"] for e in doc.nhis}
    for view in _all(lambda **p: nhis.list_nhis(ctx.store, **p)):
        if view.client_id not in named and view.client_id != ctx.admin:
            nhis.delete_nhi(
                ctx.store, view.client_id, revoke=True, reason="registry apply --prune", **common
            )
            ctx.plan.add("delete", "nhi", view.client_id)
    trusted = {e.values["issuer"] for e in doc.issuers}
    for found in issuers.list_issuers(ctx.store):
        if found["issuer"] not in trusted:
            issuers.remove_issuer(
                ctx.store, found["issuer"], reason="registry apply --prune", **common
            )
            ctx.plan.add("delete", "issuer", found["issuer"])


def apply(
    store: AdminStore,
    hasher: SecretHasher,
    text: str,
    *,
    now: int,
    admin: str,
    dry_run: bool = False,
    prune: bool = False,
) -> Plan:
    """Make the registry match the document ``text`` (see the module docstring)."""
    doc = parse(text)
    plan = Plan(dry_run)
    ctx = _Context(store, hasher, now, admin, plan)
    with store.rehearsal() if dry_run else store.step():
        for entry in doc.issuers:
            _apply_issuer(ctx, entry)
        for entry in doc.nhis:
            _apply_nhi(ctx, entry)
        matched: set[str] = set()
        for entry in doc.rules:
            _apply_rule(ctx, entry, matched)
        if prune:
            _prune(ctx, doc, matched)
    return plan
