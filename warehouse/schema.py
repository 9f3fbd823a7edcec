"""The warehouse schema: one SQLAlchemy definition for DuckDB and PostgreSQL.

Full identifiers (ID and phone numbers, names) sit in ``households``, ``persons``, the
record keys of ``record_links`` and ``review_decisions``, the evidence of ``flags``, the
payloads of ``source_records`` and ``quarantine``, and the visitors and remarks of
``visits``: tables only the monitoring role reads. The analysts' views read masked forms and keyed pseudonyms kept beside them
(``id_pseudonym``, ``record_pseudonym``, ``evidence_pseudonymous``).

Every table a county's night writes carries ``county_code``, the county whose load wrote
the row: a county's load replaces its own rows in its own transaction, so the province's
warehouse holds each county's latest good night whatever the others did.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

households = sa.Table(
    "households",
    metadata,
    sa.Column("household_id", sa.String, primary_key=True),
    sa.Column("county", sa.String),
    sa.Column("township", sa.String),
    sa.Column("village", sa.String),
    sa.Column("household_type", sa.String),
    sa.Column("monitored_category", sa.String),
    sa.Column("risk_eliminated", sa.String),
    sa.Column("identified_month", sa.Integer),
    sa.Column("household_size", sa.Integer),
    sa.Column("income_per_capita", sa.Double),
    sa.Column("wage_income", sa.Double),
    sa.Column("business_income", sa.Double),
    sa.Column("phone", sa.String),
    sa.Column("phone_masked", sa.String),
    sa.Column("county_code", sa.String),  # 6 digits (GB/T 2260): what a county-scoped login sees
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("person_id", sa.String, primary_key=True),
    sa.Column("household_id", sa.String, nullable=False),
    sa.Column("name", sa.String),
    sa.Column("id_number", sa.String),
    sa.Column("id_masked", sa.String),
    sa.Column("id_pseudonym", sa.String),
    sa.Column("sex", sa.String),
    sa.Column("ethnicity", sa.String),
    sa.Column("relation", sa.String),
    sa.Column("labour", sa.String),
    sa.Column("health", sa.String),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

record_links = sa.Table(
    "record_links",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("source_record_id", sa.String, primary_key=True),
    sa.Column("person_id", sa.String),
    sa.Column("household_id", sa.String),
    sa.Column("match_status", sa.String, nullable=False),
    sa.Column("match_probability", sa.Double),
    sa.Column("match_method", sa.String),
    sa.Column("explanation", sa.String),
    sa.Column("candidates", sa.String),
    sa.Column("record_pseudonym", sa.String),  # how analysts name the record
    sa.Column("event_date", sa.Date),  # the record's own date
    sa.Column("amount", sa.Double),  # the record's own amount (元), by its source's declaration
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("household_id", sa.String, primary_key=True),
    sa.Column("rule_id", sa.String, primary_key=True),
    sa.Column("rule_name", sa.String),
    sa.Column("severity", sa.String),
    sa.Column("status", sa.String),
    sa.Column("first_flagged_date", sa.Date),
    sa.Column("assistance", sa.String),
    sa.Column("evidence", sa.String),
    sa.Column("sentence", sa.String),
    sa.Column("evidence_pseudonymous", sa.String),  # the evidence, records named by pseudonym
    # What the visits made of the flag (visits.dispositions): identified, dismissed,
    # reopened or null; on the night's warning list; waiting past overdue_days.
    sa.Column("disposition", sa.String),
    sa.Column("listed", sa.Boolean),
    sa.Column("overdue", sa.Boolean),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

# Verification results cadres returned (``guardline visits import``): per household,
# rule and the list the row answered. visitor and remarks are about people: the
# monitoring role's.
visits = sa.Table(
    "visits",
    metadata,
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
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

exit_candidates = sa.Table(
    "exit_candidates",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("household_id", sa.String, primary_key=True),
    sa.Column("months_identified", sa.Integer),
    sa.Column("est_income_per_capita", sa.Double),
    sa.Column("monitoring_line", sa.Double),
    sa.Column("members_can_work", sa.Integer),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

processed_files = sa.Table(
    "processed_files",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("file", sa.String, primary_key=True),
    sa.Column("sha256", sa.String, primary_key=True),
    sa.Column("size", sa.BigInteger),
    sa.Column("as_of", sa.Date),
    sa.Column("status", sa.String),
    sa.Column("reason", sa.String),
    sa.Column("rows_read", sa.BigInteger),
    sa.Column("loaded", sa.BigInteger),
    sa.Column("quarantined", sa.BigInteger),
    sa.Column("duplicates", sa.BigInteger),
    sa.Column("superseded", sa.BigInteger),
    sa.Column("replaced", sa.BigInteger),
    sa.Column("warnings", sa.String),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

source_records = sa.Table(
    "source_records",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("source_record_id", sa.String, primary_key=True),
    sa.Column("file", sa.String),
    sa.Column("row", sa.BigInteger),
    sa.Column("event_date", sa.Date),
    sa.Column("payload", sa.String),  # the canonical record as JSON, identifiers as delivered
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("sha256", sa.String, primary_key=True),
    sa.Column("row", sa.BigInteger, primary_key=True),
    sa.Column("file", sa.String),
    sa.Column("field", sa.String),
    sa.Column("reason", sa.String),
    sa.Column("raw", sa.String),
    sa.Column("as_of", sa.Date),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("source_record_id", sa.String, primary_key=True),
    sa.Column("person_id", sa.String, primary_key=True),
    sa.Column("decision", sa.String, nullable=False),
    sa.Column("county_code", sa.String),  # the county whose load wrote it
)

run_audit = sa.Table(
    "run_audit",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("started_at", sa.DateTime),
    sa.Column("code_version", sa.String),
    sa.Column("counts", sa.String),  # JSON: rows per file, links by status, flags by rule, time per step
)

# What the warehouse must remember of itself: the pseudonym key's fingerprint (a change
# of key between nights is refused unless asked for).
settings = sa.Table(
    "warehouse_settings",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("changed_at", sa.DateTime),
)

# Monitoring logins limited to one county (and township): PostgreSQL's row-level
# security policies read this table.
monitor_scopes = sa.Table(
    "monitor_scopes",
    metadata,
    sa.Column("role_name", sa.String, primary_key=True),
    sa.Column("county_code", sa.String, nullable=False),
    sa.Column("township", sa.String),
)

# The views users read, as the migrations create them (their SQL lives in the
# migrations, frozen with the revision that made them).
ANALYST_VIEWS = (  # an analyst reads these: no full ID number, phone number or name in any
    "v_record_links",
    "v_flagged_households",
    "v_exit_candidates",
    "v_persons_masked",
    "v_township_summary",
    "v_visits",
    "v_visit_yield",
)
MONITOR_VIEWS = (  # today's identified forms, for the monitoring role only
    "v_record_links_identified",
    "v_flagged_households_identified",
)
VIEWS = ANALYST_VIEWS + MONITOR_VIEWS
