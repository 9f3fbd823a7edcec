"""A per-township summary of the latest night: households to visit by rule and severity.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("""
        CREATE VIEW v_township_summary AS
        SELECT h.county, h.township, f.as_of_date, f.rule_id, f.severity,
               count(DISTINCT f.household_id) AS households,
               sum(CASE WHEN f.status = 'new' THEN 1 ELSE 0 END) AS new_flags
        FROM flags f JOIN households h ON h.household_id = f.household_id
        WHERE f.as_of_date = (SELECT max(as_of_date) FROM flags) AND f.status <> 'resolved'
        GROUP BY h.county, h.township, f.as_of_date, f.rule_id, f.severity""")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_township_summary")
