"""The first warehouse: register, links, flags, exit candidates, processed files, views.

Revision ID: 0001
Revises:
"""

from alembic import op

from warehouse.schema import VIEWS, metadata

revision = "0001"
down_revision = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind)
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    metadata.drop_all(op.get_bind())
