"""The quarantine keyed by source too: (source, sha256, row).

The same bytes can be delivered to two sources (an empty file is the same file
everywhere) and each source's refusal of it is its own account; keyed by checksum and
row alone, the second refusal broke the night's load. The table is rebuilt with the
wider key (DuckDB cannot change a primary key in place); its rows are kept.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

COLUMNS = "sha256, row, source, file, field, reason, raw, as_of"


def _rebuild(key: tuple[str, ...]) -> None:
    op.rename_table("quarantine", "quarantine_old")
    op.create_table(
        "quarantine",
        sa.Column("source", sa.String, primary_key="source" in key),
        sa.Column("sha256", sa.String, primary_key=True),
        sa.Column("row", sa.BigInteger, primary_key=True),
        sa.Column("file", sa.String),
        sa.Column("field", sa.String),
        sa.Column("reason", sa.String),
        sa.Column("raw", sa.String),
        sa.Column("as_of", sa.Date),
    )
    op.execute(f"INSERT INTO quarantine ({COLUMNS}) SELECT {COLUMNS} FROM quarantine_old")
    op.drop_table("quarantine_old")


def upgrade() -> None:
    _rebuild(("source", "sha256", "row"))


def downgrade() -> None:
    _rebuild(("sha256", "row"))
