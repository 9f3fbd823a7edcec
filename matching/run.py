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
from guardline.frames import aligned
from matching import incremental
from matching.blocking import LI, RI
from matching.linker import LinkResult, link, linked_columns
from matching.model import Model
from matching.prepare import record_versions, records_frame, register_frame
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
    scored: int = 0  # records scored tonight
    carried: int = 0  # links carried over from the night this one continues

    def counts(self) -> dict[str, int]:
        return dict(self.links.group_by("match_status").len().sort("match_status").iter_rows())

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        model = None
        if self.result is not None:
            model = {"fitted": self.result.fitted, "drift": self.result.drift}
        return {
            "links": self.counts(),
            "model": model,
            "scored": self.scored,
            "carried": self.carried,
            "seconds": round(sum(self.timings.values()), 3),
        }


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


def scored_links(
    decisions: pl.DataFrame, left: pl.DataFrame, right: pl.DataFrame, versions: pl.DataFrame, settings: Settings
) -> pl.DataFrame:
    """The decisions in the terms of docs/outputs.md ``v_record_links`` (plus reasons), in
    record order, with what a later night continues: the version each record was scored
    on and its share groups.

    Each column is gathered once, into its place in the final order: joined, sorted and
    joined again, the 1.7 million decisions of a county's first night were materialised
    five times over, the peak of the match step."""
    records = (
        left.select(incremental.KEYS)
        .with_row_index(LI)
        .join(versions, on=incremental.KEYS, how="left", maintain_order="left")
        .join(incremental.share_keys(left, settings), on=incremental.KEYS, how="left", maintain_order="left")
        .sort(incremental.KEYS)
    )
    in_order = records.select(LI)
    chosen = aligned(
        decisions.select(LI, RI, "match_status", "match_probability", "match_method", "explanation"), in_order
    )
    people = right.select("person_id", "household_id").gather(chosen[RI])
    review = decisions.filter(pl.col("match_status") == "review")
    review_json = (
        review.select(LI, _candidates_json(right).alias("candidates"))
        if review.height
        else pl.DataFrame(schema={LI: pl.UInt32, "candidates": pl.String})
    )
    candidates = in_order.join(review_json, on=LI, how="left", maintain_order="left")["candidates"]
    return pl.DataFrame(
        [
            records["source"],
            records["source_record_id"],
            *people.get_columns(),
            chosen["match_status"],
            chosen["match_probability"].round(6),
            chosen["match_method"],
            chosen["explanation"],
            candidates,
            *records.drop(LI, *incremental.KEYS).get_columns(),
        ]
    )


def match_stage(
    stage: Stage, as_of: date, settings: str = "china", refit: bool = False, full: bool = False
) -> MatchResult:
    """Link every department record the night ``as_of`` sees to its register; keep the
    night's links and the model it scored with.

    A night scores with the model an earlier night saved, so that a record's link moves
    only when the record (or the register) does; a new model is fitted when none is
    saved, when the saved one is ``refit_days`` old, or on request (``refit``), and then
    the links it would change against the saved one are counted (``drift``). Re-running
    a night scores with that night's own model again.

    With the saved model, the night continues the latest night (up to this one) of the
    same basis (:mod:`matching.incremental`): only the records with a new version since
    then are scored, the other links are carried over. ``full`` scores every record
    against the register prepared afresh (not the one a scoring night kept), which gives
    the same links.
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    persons = stage.records("registry", as_of)
    if persons is None or persons.height == 0:
        raise GuardlineError(
            f"no register staged by {as_of}: run `guardline ingest` with a registry/ export first"
        )
    chosen = Settings.load(settings)
    kept = stage.model(as_of)
    saved = Model.restored(chosen, kept) if kept is not None else None
    due = refit or saved is None or (as_of - date.fromisoformat(kept["fitted_on"])).days >= chosen.refit_days
    versions = record_versions(stage, as_of)
    if versions.height == 0:  # every department refused or silent so far: nothing to link, the night goes on
        links = pl.DataFrame(schema=LINK_SCHEMA)
        stage.save_nightly("links", as_of, links)
        return MatchResult(links, None, pl.DataFrame(), pl.DataFrame(), timings)
    register = incremental.rows_digest(persons)
    night_basis = None if due else incremental.basis(register, chosen, kept)
    continued = None if due or full else _continued(stage, as_of, night_basis)
    since, earlier = continued if continued is not None else (None, None)
    right = left = pl.DataFrame()
    result = None
    if earlier is not None and incremental.changed(versions, earlier).height == 0:
        scored = earlier  # nothing new since: every link carried over, the same file
    else:
        since = None  # tonight's scored links are new
        right = register_frame(persons) if full else _prepared_register(stage, persons, register)
        left = _to_score(stage, right, as_of, versions, earlier, chosen)
        timings["prepare"] = time.perf_counter() - t
        result = link(left, right, chosen, saved=None if due else saved, previous=saved if due else None)
        timings.update(result.timings)
        t = time.perf_counter()
        rescored = scored_links(result.decisions, left, right, versions, chosen)
        scored = rescored if earlier is None else incremental.carried(earlier, rescored)
    links = apply_decisions(scored.select(list(LINK_SCHEMA)), stage.decisions(as_of), persons)
    # A night with nothing new scored keeps the files of the night it continues where
    # they hold the same (its links differ only when reviewers decided since): 1.7
    # million links and their scores were 2 s a night to write again.
    before = stage.nightly("links", since) if since is not None else None
    links_since = since if before is not None and links.equals(before) else None
    del before
    model = result.model.saved() if result is not None else {k: v for k, v in kept.items() if k != "basis"}
    fitted = result is not None and result.fitted
    record = {
        **model,
        "fitted_on": as_of.isoformat() if fitted else kept["fitted_on"],
        "training": {"records": left.height, "persons": right.height, "pairs": result.pairs_compared}
        if fitted
        else kept.get("training", {}),
    }
    record["basis"] = incremental.basis(register, chosen, record) if fitted else night_basis
    with stage.transaction():  # the night's links and the model that made them, together
        stage.save_nightly("links", as_of, links, same_as=links_since)
        stage.save_nightly("scored", as_of, scored, same_as=since)
        stage.save_model(as_of, record)
    timings["write"] = time.perf_counter() - t
    scored_now = left.height if result is not None else 0
    return MatchResult(links, result, left, right, timings, scored=scored_now, carried=links.height - scored_now)


def _prepared_register(stage: Stage, persons: pl.DataFrame, register: str) -> pl.DataFrame:
    """The register as the right side of matching: kept in the stage from the night that
    prepared it while the register's rows and the code stay the same (a register export
    comes monthly; preparing it, pinyin and all, cost a scoring night about 2 s at
    100,000 households)."""
    tag = incremental.fingerprint(register, "prepared register")
    right = stage.prepared_register(tag)
    if right is None:
        right = register_frame(persons)
        stage.save_prepared_register(tag, right)
    return right


def _continued(stage: Stage, as_of: date, night_basis: str | None) -> tuple[date, pl.DataFrame] | None:
    """The latest night up to ``as_of`` made on the same basis, and its scored links."""
    for night in reversed([d for d in stage.nights("scored") if d <= as_of]):
        model = stage.model(night)  # the night's own: every night scored saved one
        if model is not None and model.get("basis") == night_basis:
            scored = stage.nightly("scored", night)
            return (night, scored) if scored is not None else None
    return None


def _to_score(
    stage: Stage,
    right: pl.DataFrame,
    as_of: date,
    versions: pl.DataFrame,
    earlier: pl.DataFrame | None,
    settings: Settings,
) -> pl.DataFrame:
    """The records to score tonight, prepared (the columns the link reads): every one, or
    those with a new version and the partners of their groups."""
    columns = list(dict.fromkeys([*incremental.KEYS, *linked_columns(settings)]))

    def prepared(only: pl.DataFrame | None = None) -> pl.DataFrame:
        frame = records_frame(stage, right, as_of, only)
        return frame.select(columns) if frame.width else frame

    if earlier is None:
        return prepared()
    only = incremental.changed(versions, earlier)
    left = prepared(only)
    groups = incremental.share_keys(left, settings)
    while (more := incremental.partners(earlier, groups, only)).height:
        extra = prepared(more)
        only, left = pl.concat([only, more]), pl.concat([left, extra], how="vertical_relaxed")
        groups = earlier.join(more, on=incremental.KEYS, how="semi")
    return left


def staged_links(stage: Stage, as_of: date | None = None) -> pl.DataFrame:
    """The links of the night ``as_of`` (None: of the latest night matched)."""
    nights = stage.nights("links")
    night = as_of if as_of is not None else (nights[-1] if nights else None)
    links = stage.nightly("links", night) if night is not None else None
    if links is None:
        when = f" for {as_of}" if as_of is not None else ""
        raise GuardlineError(f"no links{when} in {stage.root}: run `guardline match` first")
    return links
