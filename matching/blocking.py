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

Three refinements keep the rules on an ID's fragments near-linear where a county's
key space is fixed (a few area codes, a thousand sequence numbers, eighty years of
birth dates), so that more persons means fuller blocks:

- ``unless_both`` (``id_valid``): a pair only where one of its two IDs fails its check
  digit. Two checksum-valid IDs that differ are two people's numbers; most such pairs
  were outsiders with their own number meeting every registered namesake of their
  birth date or sequence number.
- ``edits: 1``: the rule's first column, an 18-character ID, agrees within one edit (one
  character substituted, or two adjacent ones swapped), the 证件号码 comparison's "one
  edit" level: one equality join per masked position and one for the swaps, instead
  of a block of everyone sharing the area code and the sequence number.
- ``only_shorter`` (``name_key``): a pair only where the record's value is the shorter,
  for rules that exist for a name with a character lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from guardline import idnumber
from matching.settings import BlockingRule, Settings

LI, RI = "__li", "__ri"
EMPTY_PAIRS = {LI: pl.UInt32, RI: pl.UInt32}
_F17, _CHECK, _KEY = "__first17", "__check", "__key"
ID_LENGTH = 18


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
        lsub = rule_records(left, rule, LI, *_pair_columns(rule))
        lsub = lsub if rule.fast_path else lsub.join(settled, on=LI, how="anti")
        rsub = _rule_persons(right, lsub, rule, settings.max_block, result.skipped_keys)
        pairs = _rule_pairs(lsub, rsub, rule).with_columns(pl.lit(rule.fast_path).alias("fast_path"))
        result.by_rule[rule.label] = pairs.height
        if rule.fast_path:
            settled = pairs.select(LI).unique()
        found.append(pairs)
    all_pairs = (
        pl.concat(found)
        if found
        else pl.DataFrame(schema={**EMPTY_PAIRS, "fast_path": pl.Boolean})
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


def _pair_columns(rule: BlockingRule) -> tuple[str, ...]:
    """Columns a rule reads on both sides beside its own: the ones its pairs are filtered by."""
    return tuple(c for c in (rule.unless_both, rule.only_shorter) if c)


def rule_columns(rule: BlockingRule) -> list[str]:
    """Every column of a record a rule reads: its own, what :func:`rule_records` filters
    the records by, and what its pairs are filtered by."""
    kinds = ["id_kind"] if rule.only_id_kinds else []
    valid = ["id_valid"] if rule.fast_path else []
    return list(dict.fromkeys([*rule.columns, *kinds, *rule.only_without, *valid, *_pair_columns(rule)]))


def _rule_persons(
    right: pl.DataFrame, lsub: pl.DataFrame, rule: BlockingRule, max_block: int, skipped: dict[str, int]
) -> pl.DataFrame:
    """The persons a rule can propose to its records ``lsub``: all its columns known, a
    key of one of the records, the very common keys left out (counted in ``skipped``).
    Persons are many and a rule's records mostly few: keeping only the keys the records
    hold first spares counting every person's key, rule after rule. A rule within one
    edit has no common keys (a masked position leaves at most ten persons)."""
    cols = list(rule.columns)
    rsub = right.lazy().filter(pl.all_horizontal(pl.col(c).is_not_null() for c in cols))
    if not rule.edits:
        rsub = rsub.join(lsub.lazy().select(cols).unique(), on=cols, how="semi")
    rsub = rsub.select(list(dict.fromkeys([RI, *cols, *_pair_columns(rule)]))).collect()
    if rule.edits:
        return rsub
    big = rsub.group_by(cols).len().filter(pl.col("len") > max_block)
    if big.height:
        skipped[rule.label] = big.height
        rsub = rsub.join(big.select(cols), on=cols, how="anti")
    return rsub


def _rule_pairs(lsub: pl.DataFrame, rsub: pl.DataFrame, rule: BlockingRule) -> pl.DataFrame:
    """LI, RI of the pairs a rule proposes between its records and its persons."""
    join = _within_one_edit if rule.edits else _equal
    if rule.unless_both:
        # Records whose flag is set meet only persons whose flag is not, the rest meet all.
        flagged = pl.col(rule.unless_both).fill_null(False)
        pairs = pl.concat(
            [
                join(lsub.filter(~flagged), rsub, rule),
                join(lsub.filter(flagged), rsub.filter(~flagged), rule),
            ]
        )
    else:
        pairs = join(lsub, rsub, rule)
    if rule.only_shorter:
        c = rule.only_shorter
        pairs = pairs.join(lsub.select(LI, pl.col(c).str.len_chars().alias("__len_l")), on=LI).join(
            rsub.select(RI, pl.col(c).str.len_chars().alias("__len_r")), on=RI
        ).filter(pl.col("__len_l") < pl.col("__len_r"))
    return pairs.select(LI, RI).unique() if rule.edits else pairs.select(LI, RI)


def _equal(lsub: pl.DataFrame, rsub: pl.DataFrame, rule: BlockingRule) -> pl.DataFrame:
    return lsub.join(rsub, on=list(rule.columns), how="inner").select(LI, RI)


def _within_one_edit(lsub: pl.DataFrame, rsub: pl.DataFrame, rule: BlockingRule) -> pl.DataFrame:
    """Pairs whose IDs (the rule's first column, 18 characters) are at most one edit
    apart, the other columns equal.

    An ID is held as two integers, its first 17 digits and its check character (X as
    10). A substitution at position p leaves the ID with p masked unchanged: one
    equality join per position (18). A swap of two adjacent characters is undone on the
    record's side (17 variants each) and joined with the persons' IDs as they are: the
    records are the few a fast path did not settle, the persons are every one of them."""
    id_col, others = rule.columns[0], list(rule.columns[1:])
    lid, rid = _id_integers(lsub, id_col), _id_integers(rsub, id_col)
    found = []
    for p in range(ID_LENGTH):
        key = _masked(p)
        found.append(lid.with_columns(key).join(rid.with_columns(key), on=[_KEY, *others]).select(LI, RI))
    swapped = pl.concat([lid.with_columns(*_swapped(p)) for p in range(ID_LENGTH - 1)]).drop_nulls([_F17, _CHECK])
    found.append(swapped.join(rid, on=[_F17, _CHECK, *others]).select(LI, RI))
    return pl.concat(found)


def _id_integers(frame: pl.DataFrame, id_col: str) -> pl.DataFrame:
    return frame.with_columns(
        idnumber.first17_value(pl.col(id_col)).alias(_F17), idnumber.check_value(pl.col(id_col)).alias(_CHECK)
    ).filter(pl.col(_F17).is_not_null() & pl.col(_CHECK).is_not_null() & (pl.col(id_col).str.len_chars() == ID_LENGTH))


def _digit(p: int) -> pl.Expr:
    """The p-th of the first 17 digits."""
    return idnumber.digit(pl.col(_F17), p)


def _masked(p: int) -> pl.Expr:
    """The ID with position ``p`` blanked, as one integer (check character included)."""
    if p == ID_LENGTH - 1:
        return pl.col(_F17).alias(_KEY)
    return ((pl.col(_F17) - _digit(p) * 10 ** (16 - p)) * 11 + pl.col(_CHECK)).alias(_KEY)


def _swapped(p: int) -> tuple[pl.Expr, pl.Expr]:
    """The ID with positions ``p`` and ``p + 1`` swapped (the last swap moves the check
    character into the digits, so an X there gives no variant)."""
    if p == ID_LENGTH - 2:
        last = _digit(16)
        moved = pl.when(pl.col(_CHECK) < 10).then(pl.col(_F17) - last + pl.col(_CHECK))
        return moved.alias(_F17), last.alias(_CHECK)
    a, b = _digit(p), _digit(p + 1)
    delta = (b - a) * 10 ** (16 - p) + (a - b) * 10 ** (15 - p)
    return (pl.col(_F17) + delta).alias(_F17), pl.col(_CHECK)
