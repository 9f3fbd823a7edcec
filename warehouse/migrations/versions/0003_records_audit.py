"""Staged source records, quarantine, review decisions and the audit of every run.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "source_records",
        sa.Column("source", sa.String, primary_key=True),
        sa.Column("source_record_id", sa.String, primary_key=True),
        sa.Column("file", sa.String),
        sa.Column("row", sa.BigInteger),
        sa.Column("event_date", sa.Date),
        sa.Column("payload", sa.String),
    )
    op.create_table(
        "quarantine",
        sa.Column("sha256", sa.String, primary_key=True),
        sa.Column("row", sa.BigInteger, primary_key=True),
        sa.Column("source", sa.String),
        sa.Column("file", sa.String),
        sa.Column("field", sa.String),
        sa.Column("reason", sa.String),
        sa.Column("raw", sa.String),
        sa.Column("as_of", sa.Date),
    )
    op.create_table(
        "review_decisions",
        sa.Column("source", sa.String, primary_key=True),
        sa.Column("source_record_id", sa.String, primary_key=True),
        sa.Column("person_id", sa.String, primary_key=True),
        sa.Column("decision", sa.String, nullable=False),
    )
    op.create_table(
        "run_audit",
        sa.Column("run_id", sa.String, primary_key=True),
        sa.Column("as_of_date", sa.Date, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("code_version", sa.String),
        sa.Column("counts", sa.String),
    )


def downgrade() -> None:
    for table in ("run_audit", "review_decisions", "quarantine", "source_records"):
        op.drop_table(table)
