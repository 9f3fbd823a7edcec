"""Money and probabilities in double precision on DuckDB too.

SQLAlchemy's Float is DOUBLE PRECISION on PostgreSQL but FLOAT (4 bytes) on DuckDB,
which kept only 7 significant digits: 12,345.67 yuan came back as 12,345.6699.
Warehouses made before this revision are widened in place; PostgreSQL already was.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"

COLUMNS = {
    "households": ("income_per_capita", "wage_income", "business_income"),
    "record_links": ("match_probability",),
    "exit_candidates": ("est_income_per_capita", "monitoring_line"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE DOUBLE")


def downgrade() -> None:
    if op.get_bind().dialect.name != "duckdb":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE FLOAT")
