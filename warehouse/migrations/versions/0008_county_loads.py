"""Each county loads on its own: ``county_code`` on every table a county's night writes.

A province's counties were loaded in one transaction, all or none: one county's failure
kept every other county's night out of the warehouse. Each county now replaces the rows
it wrote (``county_code``) in a transaction of its own, and the latest night loaded is
kept per county (``latest_night:<county>``). Rows loaded before this revision get the
county their household or person belongs to where the row names one; the others (an
unmatched record, a file) get it from the warehouse's one county when it holds one, and
are otherwise replaced by the next load of any county (``county_code`` empty).

The views of "the latest night" read each county's latest night: a county whose night
failed shows its last good one, not nothing.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

TABLES = (
    "persons",
    "record_links",
    "flags",
    "visits",
    "exit_candidates",
    "processed_files",
    "source_records",
    "quarantine",
    "review_decisions",
)
BY_HOUSEHOLD = ("persons", "record_links", "flags", "visits", "exit_candidates")


def _latest(table: str, alias: str = "") -> str:
    """Rows of each county's latest night in ``table``."""
    a = f"{alias}." if alias else ""
    return (
        f"({a}county_code, {a}as_of_date) IN "
        f"(SELECT county_code, max(as_of_date) FROM {table} GROUP BY county_code)"
    )


def _global(table: str, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return f"{a}as_of_date = (SELECT max(as_of_date) FROM {table})"


def _views(latest) -> dict[str, str]:
    return {
        "v_flagged_households": f"""
            SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status,
                   evidence_pseudonymous AS evidence, assistance
            FROM flags WHERE {latest("flags")}""",
        "v_flagged_households_identified": f"""
            SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status, evidence, assistance
            FROM flags WHERE {latest("flags")}""",
        "v_exit_candidates": f"""
            SELECT household_id, as_of_date, months_identified, est_income_per_capita, monitoring_line,
                   members_can_work
            FROM exit_candidates WHERE {latest("exit_candidates")}""",
        "v_township_summary": f"""
            SELECT h.county, h.township, f.as_of_date, f.rule_id, f.severity,
                   count(DISTINCT f.household_id) AS households,
                   sum(CASE WHEN f.status = 'new' THEN 1 ELSE 0 END) AS new_flags
            FROM flags f JOIN households h ON h.household_id = f.household_id
            WHERE {latest("flags", "f")} AND f.status <> 'resolved'
            GROUP BY h.county, h.township, f.as_of_date, f.rule_id, f.severity""",
    }


def _columns(bind: sa.Connection, table: str) -> set[str]:
    return set(
        bind.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = :t AND table_schema = current_schema()"
            ),
            {"t": table},
        ).scalars()
    )


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:  # 0001 creates its tables from today's schema: the column may be there
        if "county_code" not in _columns(bind, table):
            op.add_column(table, sa.Column("county_code", sa.String))
    for table in BY_HOUSEHOLD:
        op.execute(
            f"UPDATE {table} SET county_code = (SELECT h.county_code FROM households h "
            f"WHERE h.household_id = {table}.household_id) WHERE county_code IS NULL"
        )
    op.execute(
        "UPDATE review_decisions SET county_code = (SELECT h.county_code FROM persons p JOIN households h "
        "ON h.household_id = p.household_id WHERE p.person_id = review_decisions.person_id) "
        "WHERE county_code IS NULL"
    )
    counties = bind.execute(sa.text("SELECT DISTINCT county_code FROM households")).scalars().all()
    only = counties[0] if len(counties) == 1 and counties[0] else ""
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET county_code = :c WHERE county_code IS NULL").bindparams(c=only))
    for name, sql in _views(_latest).items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name, sql in _views(_global).items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    for table in TABLES:
        op.drop_column(table, "county_code")
