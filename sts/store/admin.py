"""The registry as the administrative services see it: one repository per concern, all on
the connection whose transaction the front end owns (a request of the admin API, a command
of the CLI). The token endpoint has its own, narrower store (:mod:`sts.store.sql`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy.engine import Connection, Engine

from sts.store.access_reports import AccessReportRepository
from sts.store.audit import AuditRepository
from sts.store.housekeeping import HousekeepingRepository
from sts.store.issuers import IssuerRepository
from sts.store.lineage import LineageRepository
from sts.store.registry import CredentialRepository, NhiRepository
from sts.store.revocation import RevocationRepository
from sts.store.rules import RuleRepository


class AdminStore:
    """Every repository an administrative service uses, on one transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.nhis = NhiRepository(conn)
        self.credentials = CredentialRepository(conn)
        self.issuers = IssuerRepository(conn)
        self.rules = RuleRepository(conn)
        self.lineage = LineageRepository(conn)
        self.audit = AuditRepository(conn)
        self.access_reports = AccessReportRepository(conn)
        self.revocations = RevocationRepository(conn)
        self.housekeeping = HousekeepingRepository(conn)

    @contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Changes made in the block are undone when it ends (a savepoint rolled back): a dry
        run worked out on the real registry."""
        nested = self._conn.begin_nested()
        try:
            yield
        finally:
            nested.rollback()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Changes made in the block stay in the transaction (the counterpart of
        :meth:`rehearsal`)."""
        yield


#: Opens one transaction's store (housekeeping works in many short transactions).
StoreFactory = Callable[[], AbstractContextManager[AdminStore]]


@contextmanager
def admin_store(engine: Engine) -> Iterator[AdminStore]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with engine.begin() as conn:
        yield AdminStore(conn)
