"""Matching over the staging area: the step ``guardline match`` and the DAGs call.

Reads the register and department records a night sees (what had arrived by it),
links them with the Chinese settings and keeps the night's links in the stage: one row
per department record (source, source_record_id, person_id, household_id,
match_status, match_probability, match_method, explanation, candidates for review),
the reviewers' decisions that apply that night applied.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from guardline.errors import GuardlineError
from matching.blocking import LI, RI
from matching.linker import LinkResult, link
from matching.model import Model
from matching.prepare import records_frame, register_frame
from matching.review import apply_decisions
from matching.settings import Settings
from staging.stage import Stage

LINK_SCHEMA = {
    "source": pl.String,
    "source_record_id": pl.String,
    "person_id": pl.String,
    "household_id": pl.String,
    "match_status": pl.String,
    "match_probability": pl.Float64,
    "match_method": pl.String,
    "explanation": pl.String,
    "candidates": pl.String,
}


@dataclass
class MatchResult:
    links: pl.DataFrame
    result: LinkResult | None  # None: no department record to link tonight
    left: pl.DataFrame
    right: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return dict(self.links.group_by("match_status").len().sort("match_status").iter_rows())

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        model = None
        if self.result is not None:
            model = {"fitted": self.result.fitted, "drift": self.result.drift}
        return {"links": self.counts(), "model": model, "seconds": round(sum(self.timings.values()), 3)}


def _candidates_json(right: pl.DataFrame) -> pl.Expr:
    """Review candidates as JSON a reviewer (and the review file) can read."""
    return pl.col("candidates").map_elements(
        lambda cands: json.dumps(
            [
                {
                    "person_id": right["person_id"][c[RI]],
                    "household_id": right["household_id"][c[RI]],
                    "probability": round(c["match_probability"], 4),
                    "reasons": c["explanation"],
                }
                for c in cands
            ],
            ensure_ascii=False,
        ),
        return_dtype=pl.String,
    )


def links_frame(decisions: pl.DataFrame, left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """The decisions in the terms of docs/outputs.md ``v_record_links`` (plus reasons)."""
    people = right.with_row_index(RI).select(RI, "person_id", "household_id")
    review = decisions.filter(pl.col("match_status") == "review")
    review_json = (
        review.select(LI, _candidates_json(right).alias("candidates_json"))
        if review.height
        else (pl.DataFrame(schema={LI: pl.UInt32, "candidates_json": pl.String}))
    )
    return (
        decisions.join(left.with_row_index(LI).select(LI, "source", "source_record_id"), on=LI)
        .join(people, on=RI, how="left")
        .join(review_json, on=LI, how="left")
        .select(
            "source",
            "source_record_id",
            "person_id",
            "household_id",
            "match_status",
            pl.col("match_probability").round(6),
            "match_method",
            "explanation",
            pl.col("candidates_json").alias("candidates"),
        )
        .sort("source", "source_record_id")
    )


def match_stage(stage: Stage, as_of: date, settings: str = "china", refit: bool = False) -> MatchResult:
    """Link every department record the night ``as_of`` sees to its register; keep the
    night's links and the model it scored with.

    A night scores with the model an earlier night saved, so that a record's link moves
    only when the record (or the register) does; a new model is fitted when none is
    saved, when the saved one is ``refit_days`` old, or on request (``refit``), and then
    the links it would change against the saved one are counted (``drift``). Re-running
    a night scores with that night's own model again.
    """
    timings = {}
    t = time.perf_counter()
    persons = stage.records("registry", as_of)
    if persons is None or persons.height == 0:
        raise GuardlineError(
            f"no register staged by {as_of}: run `guardline ingest` with a registry/ export first"
        )
    right = register_frame(persons)
    left = records_frame(stage, right, as_of)
    if left.height == 0:  # every department refused or silent so far: nothing to link, the night goes on
        links = pl.DataFrame(schema=LINK_SCHEMA)
        stage.save_nightly("links", as_of, links)
        return MatchResult(links, None, left, right, timings)
    timings["prepare"] = time.perf_counter() - t
    chosen = Settings.load(settings)
    kept = stage.model(as_of)
    saved = Model.restored(chosen, kept) if kept is not None else None
    due = refit or saved is None or (as_of - date.fromisoformat(kept["fitted_on"])).days >= chosen.refit_days
    result = link(left, right, chosen, saved=None if due else saved, previous=saved if due else None)
    timings.update(result.timings)
    t = time.perf_counter()
    links = apply_decisions(links_frame(result.decisions, left, right), stage.decisions(as_of), persons)
    record = {
        **result.model.saved(),
        "fitted_on": as_of.isoformat() if result.fitted else kept["fitted_on"],
        "training": {"records": left.height, "persons": right.height, "pairs": result.pairs_compared}
        if result.fitted
        else kept.get("training", {}),
    }
    with stage.transaction():  # the night's links and the model that made them, together
        stage.save_nightly("links", as_of, links)
        stage.save_model(as_of, record)
    timings["write"] = time.perf_counter() - t
    return MatchResult(links, result, left, right, timings)


def staged_links(stage: Stage, as_of: date | None = None) -> pl.DataFrame:
    """The links of the night ``as_of`` (None: of the latest night matched)."""
    nights = stage.nights("links")
    night = as_of if as_of is not None else (nights[-1] if nights else None)
    links = stage.nightly("links", night) if night is not None else None
    if links is None:
        when = f" for {as_of}" if as_of is not None else ""
        raise GuardlineError(f"no links{when} in {stage.root}: run `guardline match` first")
    return links
