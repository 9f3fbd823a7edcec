"""The warehouse schema (SQLAlchemy, DuckDB or PostgreSQL), idempotent loads,
analyst views with masked identifiers, and the township lists."""
