"""The engine: blocking, comparison, the model and the decisions, for any settings.

``link(left, right, settings)`` takes two prepared frames (the columns the settings
name) and returns one decision per left row. The Chinese register and FEBRL4 go
through the same function with different settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from matching.assign import decide, every_record
from matching.blocking import LI, RI, Blocking, candidates, rule_columns
from matching.compare import gamma_name, gammas
from matching.model import (
    Model,
    estimate_u,
    fit,
    prefix_shares,
    score,
    scored_columns,
    term_frequencies,
    without_matches,
)
from matching.settings import Settings

# Pairs compared, scored and decided at a time: the values of a slice's pairs (every
# compared column of both sides) are held only while its levels are computed, and the
# words of a decision only for its slice. Memory follows the slice, not the county.
CHUNK_PAIRS = 250_000


@dataclass
class LinkResult:
    decisions: pl.DataFrame  # one row per left row: LI, RI (chosen), status, probability, ...
    model: Model
    blocking: Blocking
    timings: dict[str, float] = field(default_factory=dict)
    fitted: bool = True  # False: scored with a saved model
    # With a new fit and an earlier model: the records whose decision (person or status)
    # differs between the two, out of how many.
    drift: dict[str, int] | None = None

    @property
    def pairs_compared(self) -> int:
        return self.blocking.pairs.height


def compared_columns(settings: Settings) -> list[str]:
    """The columns the pairs frame needs: each comparison's kind says which it reads."""
    cols: list[str] = []
    for c in settings.comparisons:
        cols += [*c.of_kind.columns, *([c.unless] if c.unless else [])]
    return list(dict.fromkeys(cols))


def linked_columns(settings: Settings) -> list[str]:
    """Every column of a record the link reads: what its comparisons compare and what its
    blocking rules join on or filter by. A prepared record carries more (the name and
    phone as delivered, the birth date, the sex its ID says): each is 16 bytes a record
    more held through the link, whatever its value, a sixth of a county's records frame."""
    cols = compared_columns(settings)
    for rule in settings.blocking:
        cols += rule_columns(rule)
    return list(dict.fromkeys(cols))


def link(
    left: pl.DataFrame,
    right: pl.DataFrame,
    settings: Settings,
    saved: Model | None = None,
    previous: Model | None = None,
) -> LinkResult:
    """Decide, for every row of ``left``, which row of ``right`` (if any) it is: with the
    ``saved`` model's parameters, or with a new fit (EM); with a new fit and a
    ``previous`` model, also how many decisions the new fit changes."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    left = left.with_row_index(LI)
    right = right.with_row_index(RI)
    blocking = candidates(left, right, settings)
    timings["blocking"] = time.perf_counter() - t

    t = time.perf_counter()
    cols = compared_columns(settings)
    g = pl.concat(
        [_compared(chunk, left, right, settings, cols) for chunk in _by_record(blocking.pairs)],
        how="vertical",
    )
    timings["comparison"] = time.perf_counter() - t

    t = time.perf_counter()

    def per_pair(candidate_prior: float) -> float:
        # EM's prior is the share of matches among candidate pairs; a decision needs the
        # chance that a record and a person taken at random are the same: the matches EM
        # found among the candidates, over every possible pair.
        return min(candidate_prior * max(g.height, 1) / (left.height * right.height), 0.5)

    if saved is None:
        sample_l = left.select(
            *(pl.col(c) if c in left.columns else pl.lit(None, pl.String).alias(c) for c in cols)
        )
        u = estimate_u(sample_l, right.select(cols), settings)
        model = fit(g, settings, u)
        # A coincidence is taken to be at least ten times rarer than drawing this person at random.
        u = without_matches(u, model.m, per_pair(model.prior), floor=1 / (10 * right.height))
        model = fit(g, settings, u)
        model.candidate_prior = model.prior
        model.prior = per_pair(model.candidate_prior)
    else:  # the saved prior too: tonight's volumes move no probability
        model = Model(
            settings,
            saved.m,
            saved.u,
            saved.prior,
            candidate_prior=saved.candidate_prior,
            iterations=saved.iterations,
        )
    decisions = _decided(g, model, left, right)
    timings["model"] = time.perf_counter() - t

    drift = None
    if saved is None and previous is not None:
        before = _decided(g, Model(settings, previous.m, previous.u, previous.prior), left, right)
        changed = decisions.join(before, on=LI, how="full", coalesce=True, suffix="_before").filter(
            pl.col(RI).ne_missing(pl.col(f"{RI}_before"))
            | pl.col("match_status").ne_missing(pl.col("match_status_before"))
        )
        drift = {"changed": changed.height, "records": left.height}
    return LinkResult(decisions, model, blocking, timings, fitted=saved is None, drift=drift)


def _by_record(pairs: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """The pairs (sorted by record) in slices of about ``CHUNK_PAIRS``, never splitting
    a record's pairs: each slice is scored and decided on its own."""
    size = CHUNK_PAIRS
    ends = pairs[LI].search_sorted(pairs[LI].gather(range(size, pairs.height, size)), side="right").to_list()
    start = 0
    for end in [*dict.fromkeys(ends), pairs.height]:
        if end > start:
            yield pairs.slice(start, end - start)
            start = end
    if pairs.height == 0:
        yield pairs


def _compared(
    pairs: pl.DataFrame, left: pl.DataFrame, right: pl.DataFrame, settings: Settings, cols: list[str]
) -> pl.DataFrame:
    """The pairs with their level per comparison, and nothing of the values compared."""
    lcols = [c for c in cols if c in left.columns]
    wide = pairs.join(left.select(LI, *(pl.col(c).alias(f"{c}_l") for c in lcols)), on=LI, how="left").join(
        right.select(RI, *(pl.col(c).alias(f"{c}_r") for c in cols)), on=RI, how="left"
    )
    wide = wide.with_columns(pl.lit(None, pl.String).alias(f"{c}_l") for c in cols if c not in lcols)
    return gammas(wide, settings.comparisons).select(*pairs.columns, *(gamma_name(c) for c in settings.comparisons))


def _decided(g: pl.DataFrame, model: Model, left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
    """The decisions of one model on the compared pairs (term frequencies and prefix
    shares taken from tonight's register and records), slice by slice: the values a
    weight depends on are joined back for one slice at a time."""
    model.term_frequency = term_frequencies(right, model.settings)
    model.prefix_share = prefix_shares(left, right, model.settings)
    wanted = [c for c in scored_columns(model) if c in left.columns]
    values = left.select(LI, *(pl.col(c).alias(f"{c}_l") for c in wanted))
    chosen = [
        decide(
            score(chunk.join(values, on=LI, how="left").with_columns(
                pl.lit(None, pl.String).alias(f"{c}_l") for c in scored_columns(model) if c not in wanted
            ), model),
            model,
        )
        for chunk in _by_record(g)
    ]
    return every_record(pl.concat(chosen, how="vertical"), left.height)
