"""Comparison levels of candidate pairs: each comparison's kind computes them
(matching/comparisons.py); here they become the ``γ_`` columns the model reads.

A pairs frame carries every compared column twice, ``<column>_l`` for the record and
``<column>_r`` for the register person. The result is one Int8 column per
comparison: the level index (0 = best) or -1 where either side is missing.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from matching.comparisons import MISSING
from matching.settings import Comparison


def gamma_name(c: Comparison) -> str:
    return f"γ_{c.name}"


def levels(pairs: pl.DataFrame, c: Comparison) -> np.ndarray:
    """The level of every pair for one comparison; missing also where ``unless`` holds
    (both sides have that column), whatever the kind."""
    out = c.of_kind.levels(pairs)
    if c.unless:
        both = pairs[f"{c.unless}_l"].is_not_null() & pairs[f"{c.unless}_r"].is_not_null()
        out[both.to_numpy()] = MISSING
    return out


def gammas(pairs: pl.DataFrame, comparisons: tuple[Comparison, ...]) -> pl.DataFrame:
    """The pairs with one level column per comparison."""
    return pairs.with_columns(pl.Series(gamma_name(c), levels(pairs, c), dtype=pl.Int8) for c in comparisons)
