"""Visits: what cadres found at the door, and what it did to the lists.

``visits`` holds every verification result imported (``guardline visits import``): per
household, rule and list, the result, its outcome, who visited and when, from which file.
``flags`` gains what the visits made of each flag: ``disposition`` (identified,
dismissed, reopened), ``listed`` (on the night's warning list) and ``overdue``.

Analysts read ``v_visits`` (no visitor names or remarks: free text about people) and
``v_visit_yield``: per rule, township and month a warning episode began, how many were
verified, identified (纳入监测) and dismissed, how many are overdue, and the median days
from the first warning to the first visit — whether a province's thresholds are right.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

VIEWS = {
    "v_visits": """
        SELECT v.household_id, h.township, h.village, v.rule_id, v.list_date, v.result, v.outcome,
               v.visit_date, v.visit_date - v.list_date AS days_after_list
        FROM visits v LEFT JOIN households h ON h.household_id = v.household_id""",
    "v_visit_yield": """
        WITH episodes AS (
            SELECT household_id, rule_id, first_flagged_date, max(as_of_date) AS last_night
            FROM flags WHERE status <> 'resolved'
            GROUP BY household_id, rule_id, first_flagged_date
        ),
        latest AS (
            SELECT e.household_id, e.rule_id, e.first_flagged_date, f.overdue
            FROM episodes e JOIN flags f
              ON f.household_id = e.household_id AND f.rule_id = e.rule_id AND f.as_of_date = e.last_night
        ),
        answered AS (
            SELECT e.household_id, e.rule_id, e.first_flagged_date,
                   min(v.visit_date) AS first_visit,
                   max(CASE WHEN v.outcome = 'identified' THEN 1 ELSE 0 END) AS identified,
                   max(CASE WHEN v.outcome = 'dismissed' THEN 1 ELSE 0 END) AS dismissed
            FROM episodes e JOIN visits v
              ON v.household_id = e.household_id AND v.rule_id = e.rule_id AND v.list_date >= e.first_flagged_date
            GROUP BY e.household_id, e.rule_id, e.first_flagged_date
        )
        SELECT e.rule_id, h.township,
               CAST(extract(year FROM e.first_flagged_date) * 100 + extract(month FROM e.first_flagged_date) AS INTEGER) AS month,
               count(*) AS warnings,
               count(a.first_visit) AS verified,
               CAST(coalesce(sum(a.identified), 0) AS INTEGER) AS identified,
               CAST(coalesce(sum(a.dismissed), 0) AS INTEGER) AS dismissed,
               CAST(sum(CASE WHEN l.overdue THEN 1 ELSE 0 END) AS INTEGER) AS overdue,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY a.first_visit - e.first_flagged_date) AS median_days_to_visit
        FROM episodes e
        LEFT JOIN answered a
          ON a.household_id = e.household_id AND a.rule_id = e.rule_id AND a.first_flagged_date = e.first_flagged_date
        LEFT JOIN latest l
          ON l.household_id = e.household_id AND l.rule_id = e.rule_id AND l.first_flagged_date = e.first_flagged_date
        LEFT JOIN households h ON h.household_id = e.household_id
        GROUP BY e.rule_id, h.township,
                 CAST(extract(year FROM e.first_flagged_date) * 100 + extract(month FROM e.first_flagged_date) AS INTEGER)""",
}
FLAG_COLUMNS = (
    sa.Column("disposition", sa.String),
    sa.Column("listed", sa.Boolean),
    sa.Column("overdue", sa.Boolean),
)


def upgrade() -> None:
    bind = op.get_bind()
    have = set(
        bind.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'flags' AND table_schema = current_schema()"
            )
        ).scalars()
    )
    for column in FLAG_COLUMNS:  # 0001 creates its tables from today's schema: they may be there
        if column.name not in have:
            op.add_column("flags", column)
    tables = set(sa.inspect(bind).get_table_names())
    if "visits" not in tables:
        op.create_table(
            "visits",
            sa.Column("household_id", sa.String, primary_key=True),
            sa.Column("rule_id", sa.String, primary_key=True),
            sa.Column("list_date", sa.Date, primary_key=True),
            sa.Column("result", sa.String),
            sa.Column("outcome", sa.String),
            sa.Column("visitor", sa.String),
            sa.Column("visit_date", sa.Date),
            sa.Column("measures", sa.String),
            sa.Column("remarks", sa.String),
            sa.Column("file", sa.String),
            sa.Column("file_checksum", sa.String),
            sa.Column("recorded_by", sa.String),
            sa.Column("applies_from", sa.Date),
        )
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("visits")
    for column in FLAG_COLUMNS:
        op.drop_column("flags", column.name)
