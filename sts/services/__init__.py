"""The administrative services: one layer for every front end (the admin API, the CLI).

By concern: :mod:`~sts.services.nhis`, :mod:`~sts.services.credentials`,
:mod:`~sts.services.issuers`, :mod:`~sts.services.rules` (the registry);
:mod:`~sts.services.revocation`, :mod:`~sts.services.lineage`, :mod:`~sts.services.audit`,
:mod:`~sts.services.gc` (incident response and housekeeping). Each takes the store a front
end opened for one transaction (:class:`sts.store.admin.AdminStore`), validates its input,
writes an audit event naming the administrator (:mod:`~sts.services.admin`), and refuses
with one of the typed errors of :mod:`~sts.services.errors`. No SQL here: the store owns it.
"""
