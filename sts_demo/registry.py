"""A small demo registry for development: a person's identity provider and a chain of hops.

Idempotent: seeding an already-seeded database changes nothing. Secrets of demo NHIs are
written to ``var/demo-credentials.json`` (mode 0600) because they are shown only once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sts.core.clock import SystemClock
from sts.core.secrets import SecretHasher, load_hash_key
from sts.core.settings import Settings
from sts.services import nhis
from sts.services.errors import NotFound
from sts.store.admin import admin_store
from sts.store.db import create_engine

DEMO_CREDENTIALS = Path("var/demo-credentials.json")
DEMO_NHIS: list[dict[str, Any]] = [
    {"name": "web", "kind": "service", "owner": "team-web", "scope": "orders:read orders:write"},
    {"name": "agent", "kind": "agent", "owner": "team-ai", "scope": ""},
    {"name": "tool", "kind": "workload", "owner": "team-ai", "scope": ""},
    {
        "name": "data",
        "kind": "service",
        "owner": "team-data",
        "scope": "",
        "resources": ["https://data.demo.invalid/api"],
    },
]


def seed_demo_registry(settings: Settings, say: Callable[[str], None]) -> dict[str, str]:
    hasher = SecretHasher(load_hash_key(settings.keys_dir, create=True))
    engine = create_engine(settings.database_url)
    saved: dict[str, str] = {}
    if DEMO_CREDENTIALS.exists():
        saved = json.loads(DEMO_CREDENTIALS.read_text())
    now = SystemClock().now()
    try:
        with admin_store(engine) as store:
            for spec in DEMO_NHIS:
                try:
                    nhis.get_nhi(store, spec["name"])
                    continue
                except NotFound:
                    pass
                _, secret = nhis.create_nhi(
                    store,
                    hasher,
                    name=spec["name"],
                    kind=spec["kind"],
                    owner=spec["owner"],
                    scope=spec["scope"],
                    resources=spec.get("resources"),
                    now=now,
                    admin="demo",
                )
                if secret:
                    saved[spec["name"]] = secret
    finally:
        engine.dispose()
    DEMO_CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(DEMO_CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh, indent=2)
    say(f"demo registry: {', '.join(s['name'] for s in DEMO_NHIS)} (secrets in {DEMO_CREDENTIALS})")
    return saved
