"""Alembic environment: the warehouse schema, on DuckDB or PostgreSQL."""

from alembic import context
from alembic.ddl.impl import DefaultImpl
from sqlalchemy import create_engine

from warehouse.schema import metadata


class DuckDBImpl(DefaultImpl):
    """Alembic knows no DuckDB of its own; its DDL is close enough to the default."""

    __dialect__ = "duckdb"


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
