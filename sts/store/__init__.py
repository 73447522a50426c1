"""Registry storage: schema, engine, the SQL implementation of the protocol's store interface,
and the repositories the administrative services use (:mod:`sts.store.admin`)."""
