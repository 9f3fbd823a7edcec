"""Analysts see no identity: records by keyed pseudonym, evidence pseudonymous.

``v_record_links`` showed ``source_record_id``, the contract's record key, which holds
full ID numbers (and, for 民政, the person's name and benefit); ``v_flagged_households``
showed the same keys inside ``evidence``. From this revision the analysts' views name a
record by ``record_pseudonym`` (an HMAC of its key, stable under one pseudonym key) with
its source, its own date and its own amount, and the evidence lists pseudonyms. Today's
forms stay, for the monitoring role only, as ``v_record_links_identified`` and
``v_flagged_households_identified``.

Also: ``warehouse_settings`` (the pseudonym key's fingerprint), ``monitor_scopes``
(logins limited to one county or township), ``households.county_code``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

VIEWS = {
    "v_record_links": """
        SELECT source, record_pseudonym, event_date, amount, person_id, household_id, match_status,
               match_probability, match_method
        FROM record_links""",
    "v_flagged_households": """
        SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status,
               evidence_pseudonymous AS evidence, assistance
        FROM flags WHERE as_of_date = (SELECT max(as_of_date) FROM flags)""",
    "v_record_links_identified": """
        SELECT source, source_record_id, record_pseudonym, event_date, amount, person_id, household_id,
               match_status, match_probability, match_method
        FROM record_links""",
    "v_flagged_households_identified": """
        SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status, evidence, assistance
        FROM flags WHERE as_of_date = (SELECT max(as_of_date) FROM flags)""",
}
BEFORE = {
    "v_record_links": """
        SELECT source, source_record_id, person_id, household_id, match_status, match_probability, match_method
        FROM record_links""",
    "v_flagged_households": """
        SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status, evidence, assistance
        FROM flags WHERE as_of_date = (SELECT max(as_of_date) FROM flags)""",
}
COLUMNS = {
    "record_links": (
        sa.Column("record_pseudonym", sa.String),
        sa.Column("event_date", sa.Date),
        sa.Column("amount", sa.Double),
    ),
    "flags": (sa.Column("evidence_pseudonymous", sa.String),),
    "households": (sa.Column("county_code", sa.String),),
}


def upgrade() -> None:
    for name in BEFORE:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    bind = op.get_bind()
    for table, columns in COLUMNS.items():
        have = set(
            bind.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = :t AND table_schema = current_schema()"
                ),
                {"t": table},
            ).scalars()
        )
        for column in columns:  # 0001 creates its tables from today's schema: they may be there
            if column.name not in have:
                op.add_column(table, column)
    op.create_table(
        "warehouse_settings",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("value", sa.String, nullable=False),
        sa.Column("changed_at", sa.DateTime),
    )
    op.create_table(
        "monitor_scopes",
        sa.Column("role_name", sa.String, primary_key=True),
        sa.Column("county_code", sa.String, nullable=False),
        sa.Column("township", sa.String),
    )
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("monitor_scopes")
    op.drop_table("warehouse_settings")
    for table, columns in COLUMNS.items():
        for column in columns:
            op.drop_column(table, column.name)
    for name, sql in BEFORE.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")
