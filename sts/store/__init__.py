"""Registry storage: schema, engine, and the SQL implementation of the store interface."""
