"""PostgreSQL roles that separate who may read what.

``guardline_etl`` writes the warehouse (every night's load; it may not change the schema,
which the owner migrates with ``guardline roles``); ``guardline_monitor`` reads everything,
full identifiers included (it makes the lists); ``guardline_analyst`` reads the
analysts' views only — masked IDs and phones, pseudonyms — and is refused the tables
that hold full identifiers, and the monitoring views of today's identified forms. A
monitoring login can be limited to one county, or one township
(``guardline roles --county 433124 --township 龙潭镇 NAME``): PostgreSQL's row-level
security shows it its own households and no others. The embedded DuckDB file has no roles: whoever can read the
file reads everything, so a shared warehouse with analysts belongs on PostgreSQL.
"""

from __future__ import annotations

import os
import re

import sqlalchemy as sa

from guardline.errors import GuardlineError
from warehouse.schema import ANALYST_VIEWS, VIEWS, metadata

ETL, MONITOR, ANALYST = "guardline_etl", "guardline_monitor", "guardline_analyst"
# The tables whose rows belong to a household: what a county- or township-scoped
# monitoring login reads, row-level security keeping it to its own households.
SCOPED_TABLES = ("households", "persons", "record_links", "flags", "exit_candidates", "visits")
_IN_SCOPE = "EXISTS (SELECT 1 FROM monitor_scopes s WHERE s.role_name = current_user)"
_POLICIES = {
    "households": f"""NOT {_IN_SCOPE} OR EXISTS (
        SELECT 1 FROM monitor_scopes s WHERE s.role_name = current_user
        AND s.county_code = households.county_code AND (s.township IS NULL OR s.township = households.township))""",
    **{
        table: f"NOT {_IN_SCOPE} OR household_id IN (SELECT household_id FROM households)"
        for table in SCOPED_TABLES[1:]
    },
}


def _require_postgresql(eng: sa.Engine) -> None:
    if eng.dialect.name != "postgresql":
        raise GuardlineError(
            "roles exist on a PostgreSQL warehouse only (the DuckDB file is read by whoever can "
            "read the file)"
        )


def password_variable(role: str) -> str:
    """The environment variable a role's password is read from (GUARDLINE_ETL_PASSWORD…)."""
    return f"GUARDLINE_{role.removeprefix('guardline_').upper()}_PASSWORD"


def _create_login(conn: sa.Connection, role: str) -> None:
    """The role, as a login that is no superuser; its password from the environment when
    given (a deployment sets them; trust-authenticated test servers need none)."""
    conn.execute(
        sa.text(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB; END IF; END $$"
        )
    )
    password = os.environ.get(password_variable(role))
    if password:
        quoted = password.replace("'", "''")
        conn.execute(sa.text(f"ALTER ROLE {role} WITH LOGIN PASSWORD '{quoted}'"))


def create_roles(eng: sa.Engine) -> None:
    """Create the three roles (if missing), grant them the warehouse's schema, and put
    row-level security on the tables whose rows belong to a household (a login without a
    scope sees every row; a scoped login its county's or township's)."""
    _require_postgresql(eng)
    with eng.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        for role in (ETL, MONITOR, ANALYST):
            _create_login(conn, role)
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
        tables = ", ".join(f'"{schema}".{t}' for t in metadata.tables)
        views = ", ".join(f'"{schema}".{v}' for v in VIEWS)
        conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {ETL}"))
        # The night checks the schema's revision before it writes (it migrates nothing).
        conn.execute(sa.text(f'GRANT SELECT ON "{schema}".alembic_version TO {ETL}, {MONITOR}'))
        conn.execute(sa.text(f"GRANT SELECT ON {tables}, {views} TO {MONITOR}"))
        conn.execute(sa.text(f"REVOKE ALL ON {tables}, {views} FROM {ANALYST}"))
        readable = ", ".join(f'"{schema}".{v}' for v in ANALYST_VIEWS)
        conn.execute(sa.text(f"GRANT SELECT ON {readable} TO {ANALYST}"))
        for table, condition in _POLICIES.items():
            conn.execute(sa.text(f'ALTER TABLE "{schema}".{table} ENABLE ROW LEVEL SECURITY'))
            conn.execute(sa.text(f'DROP POLICY IF EXISTS guardline_scope ON "{schema}".{table}'))
            conn.execute(
                sa.text(f'CREATE POLICY guardline_scope ON "{schema}".{table} USING ({condition})')
            )


_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_scoped_login(eng: sa.Engine, name: str, county_code: str, township: str | None = None) -> None:
    """A monitoring login that reads only its county's (or township's) households: the
    household tables under row-level security, not the views, the staged payloads or
    the quarantine (which hold every county's identities)."""
    _require_postgresql(eng)
    if not _NAME.match(name) or name in (ETL, MONITOR, ANALYST):
        raise GuardlineError(
            f"{name!r} cannot be a scoped login: lower-case letters, digits and _, not one of the three roles"
        )
    if not (len(county_code) == 6 and county_code.isdigit()):
        raise GuardlineError(f"--county must be a 6-digit county code (GB/T 2260), not {county_code!r}")
    create_roles(eng)
    scopes = metadata.tables["monitor_scopes"]
    with eng.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        _create_login(conn, name)
        conn.execute(scopes.delete().where(scopes.c.role_name == name))
        conn.execute(scopes.insert().values(role_name=name, county_code=county_code, township=township))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO {name}'))
        readable = ", ".join(f'"{schema}".{t}' for t in (*SCOPED_TABLES, "monitor_scopes"))
        conn.execute(sa.text(f"GRANT SELECT ON {readable} TO {name}"))
        others = [t for t in metadata.tables if t not in (*SCOPED_TABLES, "monitor_scopes")]
        refused = ", ".join(f'"{schema}".{t}' for t in (*others, *VIEWS))
        conn.execute(sa.text(f"REVOKE ALL ON {refused} FROM {name}"))


