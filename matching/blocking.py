"""Candidate pairs: the union of blocking rules, each an equality join on a few
columns, so that the number of pairs grows with the data, not with its square.

A rule marked ``fast_path`` (a checksum-valid ID found in the register) settles
its records: they are compared with that person only and skip the other rules.
Keys shared by more than ``max_block`` persons are left out of a rule (and counted),
so one very common value cannot blow up the pair count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from matching.settings import Settings

LI, RI = "__li", "__ri"


@dataclass
class Blocking:
    pairs: pl.DataFrame  # LI, RI, fast_path
    by_rule: dict[str, int] = field(default_factory=dict)
    skipped_keys: dict[str, int] = field(default_factory=dict)


def candidates(left: pl.DataFrame, right: pl.DataFrame, settings: Settings) -> Blocking:
    """Pairs of left (records) and right (persons) row indices that any rule proposes."""
    found: list[pl.DataFrame] = []
    result = Blocking(pl.DataFrame())
    settled = pl.DataFrame({LI: []}, schema={LI: pl.UInt32})
    for rule in settings.blocking:
        cols = list(rule.columns)
        lsub = left.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols))
        if rule.only_id_kinds:
            lsub = lsub.filter(pl.col("id_kind").is_in(list(rule.only_id_kinds)))
        if rule.only_without:
            lsub = lsub.filter(pl.all_horizontal(pl.col(c).is_null() for c in rule.only_without))
        lsub = lsub.filter(pl.col("id_valid")) if rule.fast_path else lsub.join(settled, on=LI, how="anti")
        rsub = right.filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols))
        sizes = rsub.group_by(cols).len()
        big = sizes.filter(pl.col("len") > settings.max_block)
        if big.height:
            result.skipped_keys[rule.label] = big.height
            rsub = rsub.join(big.select(cols), on=cols, how="anti")
        pairs = lsub.select(LI, *cols).join(rsub.select(RI, *cols), on=cols, how="inner").select(LI, RI)
        pairs = pairs.with_columns(pl.lit(rule.fast_path).alias("fast_path"))
        result.by_rule[rule.label] = pairs.height
        if rule.fast_path:
            settled = pairs.select(LI).unique()
        found.append(pairs)
    all_pairs = (
        pl.concat(found)
        if found
        else pl.DataFrame(schema={LI: pl.UInt32, RI: pl.UInt32, "fast_path": pl.Boolean})
    )
    result.pairs = all_pairs.group_by(LI, RI).agg(pl.col("fast_path").any()).sort(LI, RI)
    return result
