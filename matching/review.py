"""The review queue: candidates out to a CSV a person fills in, decisions back in.

``export`` writes one row per candidate of every record in review (source,
source_record_id, candidate person_id, household, probability, reasons, decision).
``import`` reads the reviewer's ``accept`` / ``reject`` back, checks them (file, row and
field named on every mistake) and remembers them in the stage; matching then applies
them, so a decided record is never sent to review again: an accepted candidate is its
person (method ``reviewed``), a record whose candidates were all rejected stays unmatched.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl

from guardline.csvsafe import revive, write_csv
from guardline.errors import DeliveryError, GuardlineError
from staging.stage import Stage

COLUMNS = (
    "source",
    "source_record_id",
    "candidate_person_id",
    "candidate_household_id",
    "probability",
    "reasons",
    "decision",
)
KEY = ["source", "source_record_id"]


def export_review(links: pl.DataFrame, path: Path) -> int:
    """Write the review queue; the number of records in it."""
    review = links.filter(pl.col("match_status") == "review")
    rows = [
        [source, record, c["person_id"], c["household_id"], c["probability"], c["reasons"], ""]
        for source, record, candidates in review.select("source", "source_record_id", "candidates").iter_rows()
        for c in json.loads(candidates or "[]")
    ]
    write_csv(path, COLUMNS, rows)
    return review.height


def read_decisions(path: Path, persons: pl.DataFrame) -> pl.DataFrame:
    """The reviewer's decisions, checked: known persons, accept/reject, one accept a record."""
    label = path.name
    try:
        rows = [
            {k: revive(v) if isinstance(v, str) else v for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig")))
        ]
    except UnicodeDecodeError:
        raise DeliveryError(label, "not UTF-8 text: save the review file as CSV UTF-8") from None
    missing = [
        c
        for c in ("source", "source_record_id", "candidate_person_id", "decision")
        if rows and c not in rows[0]
    ]
    if missing:
        raise DeliveryError(label, f"missing column {', '.join(missing)}", row=1)
    known = set(persons["person_id"])
    out = []
    for n, row in enumerate(rows, start=2):
        decision = (row.get("decision") or "").strip().lower()
        if not decision:
            continue
        if decision not in ("accept", "reject"):
            raise DeliveryError(label, f"{decision!r} is neither accept nor reject", row=n, field="decision")
        person = (row.get("candidate_person_id") or "").strip()
        if person not in known:
            raise DeliveryError(
                label, f"{person!r} is not a person of the register", row=n, field="candidate_person_id"
            )
        out.append((row["source"].strip(), row["source_record_id"].strip(), person, decision))
    frame = pl.DataFrame(out, schema=[*KEY, "person_id", "decision"], orient="row")
    twice = frame.filter(pl.col("decision") == "accept").group_by(KEY).len().filter(pl.col("len") > 1)
    if twice.height:
        source, record, _ = twice.row(0)
        raise DeliveryError(
            label, f"{source} {record} has more than one accepted candidate", field="decision"
        )
    return frame


def import_review(stage: Stage, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A reviewer's decisions, checked, remembered from the latest night matched on, and
    applied to that night's links — the decisions and the links together, or neither.
    An earlier night re-run later keeps the decisions it had. (decisions, links)."""
    nights = stage.nights("links")
    if not nights:
        raise GuardlineError(f"no links in {stage.root}: run `guardline match` first")
    night = nights[-1]
    persons = stage.records("registry", night)
    if persons is None:
        raise GuardlineError("no register staged yet")
    decisions = read_decisions(path, persons)
    with stage.transaction():
        stage.add_decisions(decisions, night)
        links = apply_decisions(stage.nightly("links", night), stage.decisions(night), persons)
        stage.save_nightly("links", night, links)
    return decisions, links


def apply_decisions(
    links: pl.DataFrame, decisions: pl.DataFrame | None, persons: pl.DataFrame
) -> pl.DataFrame:
    """Links with the reviewers' decisions applied: accepted → matched (reviewed); a
    record whose candidates were all rejected (none accepted) → unmatched (reviewed)."""
    if decisions is None or decisions.height == 0:
        return links
    accepted = (
        decisions.filter(pl.col("decision") == "accept")
        .join(persons.select("person_id", "household_id"), on="person_id", how="left")
        .select(
            *KEY,
            pl.col("person_id").alias("__p"),
            pl.col("household_id").alias("__h"),
            pl.lit("matched").alias("__s"),
        )
    )
    rejected = (
        decisions.filter(pl.col("decision") == "reject")
        .select(KEY)
        .unique()
        .join(accepted.select(KEY), on=KEY, how="anti")
        .with_columns(
            pl.lit(None, pl.String).alias("__p"),
            pl.lit(None, pl.String).alias("__h"),
            pl.lit("unmatched").alias("__s"),
        )
    )
    decided = pl.concat([accepted, rejected])
    return (
        links.join(decided, on=KEY, how="left")
        .with_columns(
            pl.when(pl.col("__s").is_not_null())
            .then(pl.col("__p"))
            .otherwise(pl.col("person_id"))
            .alias("person_id"),
            pl.when(pl.col("__s").is_not_null())
            .then(pl.col("__h"))
            .otherwise(pl.col("household_id"))
            .alias("household_id"),
            pl.coalesce("__s", "match_status").alias("match_status"),
            pl.when(pl.col("__s").is_not_null())
            .then(pl.lit("reviewed"))
            .otherwise(pl.col("match_method"))
            .alias("match_method"),
        )
        .drop("__p", "__h", "__s")
    )
