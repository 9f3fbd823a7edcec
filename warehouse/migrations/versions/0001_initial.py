"""The first warehouse: register, links, flags, exit candidates, processed files, views.

Revision ID: 0001
Revises:
"""

from alembic import op

from warehouse.schema import metadata

revision = "0001"
down_revision = None

VIEWS = {
    "v_record_links": """
        SELECT source, source_record_id, person_id, household_id, match_status, match_probability, match_method
        FROM record_links""",
    "v_flagged_households": """
        SELECT household_id, rule_id, as_of_date, severity, first_flagged_date, status, evidence, assistance
        FROM flags WHERE as_of_date = (SELECT max(as_of_date) FROM flags)""",
    "v_exit_candidates": """
        SELECT household_id, as_of_date, months_identified, est_income_per_capita, monitoring_line,
               members_can_work
        FROM exit_candidates WHERE as_of_date = (SELECT max(as_of_date) FROM exit_candidates)""",
    "v_persons_masked": """
        SELECT p.person_id, p.household_id, p.id_masked, p.id_pseudonym, p.sex, p.relation, p.labour, p.health,
               h.county, h.township, h.village, h.phone_masked
        FROM persons p JOIN households h ON h.household_id = p.household_id""",
}


FIRST_TABLES = ("households", "persons", "record_links", "flags", "exit_candidates", "processed_files")


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[t] for t in FIRST_TABLES])
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[t] for t in FIRST_TABLES])
