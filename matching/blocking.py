"""Candidate pairs: the union of blocking rules, each an equality join on a few
columns, so that the number of pairs grows with the data, not with its square.

A rule marked ``fast_path`` (a checksum-valid ID found in the register) settles
its records: they are compared with that person only and skip the other rules.
A rule marked ``shares`` joins records with records: those that agree on its columns
(one department's records of the same name and the same delivered ID cell) share
their candidates, after the other rules, so that one of a person's records meets
whoever another found. Sharing proposes pairs only: each is scored on its own record.
Keys shared by more than ``max_block`` persons are left out of a rule (and counted),
so one very common value cannot blow up the pair count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from matching.settings import BlockingRule, Settings

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
    for rule in (r for r in settings.blocking if not r.shares):
        cols = list(rule.columns)
        lsub = rule_records(left, rule, LI)
        lsub = lsub if rule.fast_path else lsub.join(settled, on=LI, how="anti")
        rsub = right.lazy().filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols)).select(RI, *cols).collect()
        sizes = rsub.group_by(cols).len()
        big = sizes.filter(pl.col("len") > settings.max_block)
        if big.height:
            result.skipped_keys[rule.label] = big.height
            rsub = rsub.join(big.select(cols), on=cols, how="anti")
        pairs = lsub.join(rsub, on=cols, how="inner").select(LI, RI)
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
    for rule in (r for r in settings.blocking if r.shares):
        group = rule_records(left, rule, LI).join(settled, on=LI, how="anti").select(
            LI, pl.struct(rule.columns).rank("dense").alias("__group")
        )
        found_by_group = all_pairs.join(group, on=LI).select("__group", RI).unique()
        shared = group.join(found_by_group, on="__group").select(LI, RI).join(
            all_pairs.select(LI, RI), on=[LI, RI], how="anti"
        )
        result.by_rule[rule.label] = shared.height
        all_pairs = pl.concat([all_pairs, shared.with_columns(pl.lit(False).alias("fast_path"))])
    result.pairs = all_pairs.group_by(LI, RI).agg(pl.col("fast_path").any()).sort(LI, RI)
    return result


def rule_records(left: pl.DataFrame, rule: BlockingRule, *keep: str) -> pl.DataFrame:
    """The records a rule applies to — all its columns known, of its ID kinds, lacking what
    it requires them to lack, a valid ID for a fast path — as ``keep`` and the rule's
    columns only: filtering every column of a county's records, once per rule, was the
    peak of a night's matching."""
    conditions = [pl.col(c).is_not_null() for c in rule.columns]
    if rule.only_id_kinds:
        conditions.append(pl.col("id_kind").is_in(list(rule.only_id_kinds)))
    conditions += [pl.col(c).is_null() for c in rule.only_without]
    if rule.fast_path:
        conditions.append(pl.col("id_valid"))
    columns = list(dict.fromkeys([*keep, *rule.columns]))
    return left.lazy().filter(pl.all_horizontal(conditions)).select(columns).collect()
