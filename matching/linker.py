"""The engine: blocking, comparison, the model and the decisions, for any settings.

``link(left, right, settings)`` takes two prepared frames (the columns the settings
name) and returns one decision per left row. The Chinese register and FEBRL4 go
through the same function with different settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl

from matching.assign import decide
from matching.blocking import LI, RI, Blocking, candidates
from matching.compare import gammas
from matching.model import Model, estimate_u, fit, prefix_shares, score, term_frequencies, without_matches
from matching.settings import Settings


@dataclass
class LinkResult:
    decisions: pl.DataFrame  # one row per left row: LI, RI (chosen), status, probability, ...
    model: Model
    blocking: Blocking
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pairs_compared(self) -> int:
        return self.blocking.pairs.height


def compared_columns(settings: Settings) -> list[str]:
    """The columns the pairs frame needs: each comparison's kind says which it reads."""
    cols: list[str] = []
    for c in settings.comparisons:
        cols += [*c.of_kind.columns, *([c.unless] if c.unless else [])]
    return list(dict.fromkeys(cols))


def link(left: pl.DataFrame, right: pl.DataFrame, settings: Settings) -> LinkResult:
    """Decide, for every row of ``left``, which row of ``right`` (if any) it is."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    left = left.with_row_index(LI)
    right = right.with_row_index(RI)
    blocking = candidates(left, right, settings)
    timings["blocking"] = time.perf_counter() - t

    t = time.perf_counter()
    cols = compared_columns(settings)
    lcols = [c for c in cols if c in left.columns]
    pairs = blocking.pairs.join(
        left.select(LI, *(pl.col(c).alias(f"{c}_l") for c in lcols)), on=LI, how="left"
    ).join(right.select(RI, *(pl.col(c).alias(f"{c}_r") for c in cols)), on=RI, how="left")
    pairs = pairs.with_columns(pl.lit(None, pl.String).alias(f"{c}_l") for c in cols if c not in lcols)
    g = gammas(pairs, settings.comparisons)
    timings["comparison"] = time.perf_counter() - t

    t = time.perf_counter()
    sample_l = left.select(
        *(pl.col(c) if c in left.columns else pl.lit(None, pl.String).alias(c) for c in cols)
    )
    u = estimate_u(sample_l, right.select(cols), settings)
    model = fit(g, settings, u)
    # EM's prior is the share of matches among candidate pairs; a decision needs the
    # chance that a record and a person taken at random are the same: the matches EM
    # found among the candidates, over every possible pair.
    random_prior = min(model.prior * max(g.height, 1) / (left.height * right.height), 0.5)
    # A coincidence is taken to be at least ten times rarer than drawing this person at random.
    u = without_matches(u, model.m, random_prior, floor=1 / (10 * right.height))
    model = fit(g, settings, u)
    model.prior = min(model.prior * max(g.height, 1) / (left.height * right.height), 0.5)
    model.term_frequency = term_frequencies(right, settings)
    model.prefix_share = prefix_shares(left, right, settings)
    scored = score(g, model)
    timings["model"] = time.perf_counter() - t

    t = time.perf_counter()
    decisions = decide(scored, model, left.height)
    timings["decisions"] = time.perf_counter() - t
    return LinkResult(decisions, model, blocking, timings)
