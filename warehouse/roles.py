"""PostgreSQL roles that separate who may read what.

``guardline_etl`` writes the warehouse (every night's load; it may not change the schema,
which the owner migrates with ``guardline roles``); ``guardline_monitor`` reads everything,
full identifiers included (it makes the lists); ``guardline_analyst`` reads the
analysts' views only — masked IDs and phones, pseudonyms — and is refused the tables
that hold full identifiers. The embedded DuckDB file has no roles: whoever can read the
file reads everything, so a shared warehouse with analysts belongs on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

from guardline.errors import GuardlineError
from warehouse.schema import VIEWS, metadata

ETL, MONITOR, ANALYST = "guardline_etl", "guardline_monitor", "guardline_analyst"
ANALYST_VIEWS = (
    "v_record_links",
    "v_flagged_households",
    "v_exit_candidates",
    "v_persons_masked",
    "v_township_summary",
)


def create_roles(eng: sa.Engine) -> None:
    """Create the three roles (if missing) and grant them the warehouse's schema."""
    if eng.dialect.name != "postgresql":
        raise GuardlineError(
            "roles exist on a PostgreSQL warehouse only (the DuckDB file is read by whoever can "
            "read the file)"
        )
    with eng.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        for role in (ETL, MONITOR, ANALYST):
            conn.execute(
                sa.text(
                    f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                    f"THEN CREATE ROLE {role} LOGIN; END IF; END $$"
                )
            )
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
        tables = ", ".join(f'"{schema}".{t}' for t in metadata.tables)
        views = ", ".join(f'"{schema}".{v}' for v in VIEWS)
        conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {ETL}"))
        # The night checks the schema's revision before it writes (it migrates nothing).
        conn.execute(sa.text(f'GRANT SELECT ON "{schema}".alembic_version TO {ETL}, {MONITOR}'))
        conn.execute(sa.text(f"GRANT SELECT ON {tables}, {views} TO {MONITOR}"))
        conn.execute(sa.text(f"REVOKE ALL ON {tables} FROM {ANALYST}"))
        readable = ", ".join(f'"{schema}".{v}' for v in ANALYST_VIEWS)
        conn.execute(sa.text(f"GRANT SELECT ON {readable} TO {ANALYST}"))
