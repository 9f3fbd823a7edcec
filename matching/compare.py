"""Comparison levels of candidate pairs, vectorised: polars for equality, rapidfuzz's
``cpdist`` (C++, all cores) for edit distances and Jaro-Winkler similarity.

A pairs frame carries every compared column twice, ``<column>_l`` for the record and
``<column>_r`` for the register person. The result is one Int8 column per
comparison: the level index (0 = best) or -1 where either side is missing.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from matching.settings import Comparison

MISSING = -1


def gamma_name(c: Comparison) -> str:
    return f"γ_{c.name}"


def _texts(s: pl.Series) -> list[str]:
    return s.fill_null("").to_list()


def _distance(left: pl.Series, right: pl.Series, scorer) -> np.ndarray:
    if left.len() == 0:
        return np.zeros(0)
    return process.cpdist(_texts(left), _texts(right), scorer=scorer, workers=-1)


def levels(pairs: pl.DataFrame, c: Comparison) -> np.ndarray:
    """The level of every pair for one comparison."""
    left, right = pairs[f"{c.column}_l"], pairs[f"{c.column}_r"]
    l_null = left.is_null().to_numpy()
    r_null = right.is_null().to_numpy()
    equal = (left == right).fill_null(False).to_numpy()
    n = pairs.height
    out = np.full(n, MISSING, dtype=np.int8)
    if c.kind == "exact":
        out[:] = np.where(equal, 0, 1)
        missing = l_null | r_null
    elif c.kind == "date":
        d = _distance(left, right, DamerauLevenshtein.distance)
        out[:] = np.where(equal, 0, np.where(d <= 1, 1, 2))
        missing = l_null | r_null
    elif c.kind == "id_number":
        prefix = pairs[f"{c.prefix}_l"] if c.prefix else pl.Series([None] * n, dtype=pl.String)
        p_null = prefix.is_null().to_numpy()
        d = _distance(left, right, DamerauLevenshtein.distance)
        starts = (
            right.str.starts_with(prefix.fill_null("\x00")).fill_null(False).to_numpy()
            if c.prefix
            else (np.zeros(n, dtype=bool))
        )
        out[:] = np.where(equal, 0, np.where(~l_null & (d <= 1), 1, np.where(~p_null & starts, 2, 3)))
        missing = (l_null & p_null) | r_null
    elif c.kind == "name":
        pin_equal = (
            (pairs[f"{c.pinyin}_l"] == pairs[f"{c.pinyin}_r"]).fill_null(False).to_numpy()
            if c.pinyin
            else np.zeros(n, dtype=bool)
        )
        d = _distance(left, right, Levenshtein.distance)
        long_enough = (left.str.len_chars().fill_null(0) >= 2).to_numpy()
        out[:] = np.where(equal, 0, np.where(pin_equal, 1, np.where((d <= 1) & long_enough, 2, 3)))
        missing = l_null | r_null
    elif c.kind == "string":
        sim = _distance(left, right, JaroWinkler.normalized_similarity)
        level = np.full(n, len(c.thresholds) + 1, dtype=np.int8)
        for i, t in reversed(list(enumerate(c.thresholds))):
            level[sim >= t] = i + 1
        level[equal] = 0
        out[:] = level
        missing = l_null | r_null
    elif c.kind == "edits":
        d = _distance(left, right, DamerauLevenshtein.distance)
        level = np.full(n, len(c.thresholds) + 1, dtype=np.int8)
        for i, t in reversed(list(enumerate(c.thresholds))):
            level[d <= t] = i + 1
        level[equal] = 0
        out[:] = level
        missing = l_null | r_null
    elif c.kind == "place":
        parent_l, parent_r = pairs[f"{c.parent}_l"], pairs[f"{c.parent}_r"]
        parent_equal = (parent_l == parent_r).fill_null(False).to_numpy()
        out[:] = np.where(equal, 0, np.where(parent_equal, 1, 2))
        missing = (l_null & parent_l.is_null().to_numpy()) | (r_null & parent_r.is_null().to_numpy())
    else:  # pragma: no cover - Settings.load refuses unknown kinds
        raise ValueError(c.kind)
    if c.unless:
        missing = (
            missing | (pairs[f"{c.unless}_l"].is_not_null() & pairs[f"{c.unless}_r"].is_not_null()).to_numpy()
        )
    out[missing] = MISSING
    return out


def gammas(pairs: pl.DataFrame, comparisons: tuple[Comparison, ...]) -> pl.DataFrame:
    """The pairs with one level column per comparison."""
    return pairs.with_columns(pl.Series(gamma_name(c), levels(pairs, c), dtype=pl.Int8) for c in comparisons)
