"""Warehouse connections and migrations: the embedded DuckDB file by default, a
``postgresql+psycopg://`` URL for a shared warehouse."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def default_url(home: Path) -> str:
    return f"duckdb:///{(home / 'warehouse.duckdb').resolve()}"


def engine(url: str) -> sa.Engine:
    """An engine for the warehouse URL (DuckDB without its progress bar on the console)."""
    eng = sa.create_engine(url)
    if url.startswith("duckdb"):

        @sa.event.listens_for(eng, "connect")
        def _quiet(dbapi_connection, _record) -> None:
            dbapi_connection.execute("SET enable_progress_bar = false")

    return eng


def upgrade(eng: sa.Engine, revision: str = "head") -> None:
    """Bring the warehouse to the latest schema, or to ``revision`` (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
