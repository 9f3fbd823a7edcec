"""Blocking: which persons each record meets, rule by rule, on prepared frames."""

from __future__ import annotations

import random
from datetime import date

import polars as pl
import pytest
from rapidfuzz.distance import DamerauLevenshtein

from guardline.errors import GuardlineError
from guardline.idnumber import is_valid, make_id
from matching.blocking import LI, RI, candidates
from matching.normalise import normalise_names, place_key, with_id_columns
from matching.prepare import _keys
from matching.settings import BlockingRule, Settings

AREA = "433124"


def _people(rows: list[tuple[str, str]], id_col: str) -> pl.DataFrame:
    """(ID as delivered, name) rows prepared as matching prepares either side, no place."""
    frame = pl.DataFrame({id_col: [r[0] for r in rows], "name": [r[1] for r in rows]})
    frame = normalise_names(with_id_columns(frame, id_col), "name").with_columns(
        *(place_key(pl.lit(None, pl.String)).alias(c) for c in ("township_key", "village_key")),
        *(pl.lit(None, pl.String).alias(c) for c in ("care_township_key", "care_village_key", "phone")),
        pl.lit("x").alias("source"),
        pl.col(id_col).alias("id_raw"),
    )
    return _keys(frame)


def _met(records: list[tuple[str, str]], persons: list[tuple[str, str]], settings: Settings) -> dict[int, set[int]]:
    """Per record (its index), the persons (their indices) blocking proposes."""
    left = _people(records, "id_raw").with_row_index(LI)
    right = _people(persons, "id_number").with_row_index(RI)
    pairs = candidates(left, right, settings).pairs
    met: dict[int, set[int]] = {i: set() for i in range(len(records))}
    for li, ri in pairs.select(LI, RI).iter_rows():
        met[li].add(ri)
    return met


def _typo(id18: str, position: int) -> str:
    return id18[:position] + str((int(id18[position]) + 1) % 10) + id18[position + 1 :]


def _swap(id18: str, position: int) -> str:
    return id18[:position] + id18[position + 1] + id18[position] + id18[position + 2 :]


def test_within_one_edit_is_exactly_one_typo_or_one_swap_of_adjacent_characters():
    """Against Damerau-Levenshtein on the whole ID: every pair one character substituted
    or two adjacent ones swapped apart is proposed, and no other, on IDs crowded around
    one number (many share all but two or three of their characters)."""
    rng = random.Random(5)
    base = make_id(AREA, date(1980, 5, 6), 120)

    def variant() -> str:
        s = list(base)
        for _ in range(rng.randrange(3)):
            i = rng.randrange(18)
            s[i] = rng.choice("0123456789X" if i == 17 else "0123456789")
        if rng.random() < 0.4:
            i = rng.randrange(17)
            s[i], s[i + 1] = s[i + 1], s[i]
        return "".join(s)

    persons = sorted({variant() for _ in range(300)})
    records = [variant() for _ in range(200)]
    settings = Settings("t", (), (BlockingRule(("id18",), edits=1),))
    met = _met([(r, "李明") for r in records], [(p, "李明") for p in persons], settings)
    expected = {
        i: {j for j, p in enumerate(persons) if DamerauLevenshtein.distance(r, p) <= 1} for i, r in enumerate(records)
    }
    assert met == expected
    assert sum(map(len, expected.values())) > 300, "the crowd makes many one-edit pairs"
    assert any(DamerauLevenshtein.distance(r, p) == 2 for r in records for p in persons), "and many two apart"


def test_the_chinese_rules_meet_typos_and_swaps_but_not_another_valid_number():
    """An outsider with a valid number of their own meets nobody on their birth date,
    area or sequence, even namesakes; a number with a typo or a swap meets its person
    whatever the name, and a valid number meets the register's person whose own number
    has a typo."""
    china = Settings.load("china")
    person = make_id(AREA, date(1980, 5, 6), 12)
    sibling = make_id(AREA, date(1980, 5, 6), 14)  # same birth date, surname and name
    outsider = make_id(AREA, date(1980, 5, 6), 16)
    mistyped_in_register = make_id(AREA, date(1975, 3, 21), 33)
    persons = [
        (person, "张伟"),
        (sibling, "张伟"),
        (_typo(mistyped_in_register, 10), "王芳"),
        (make_id(AREA, date(1990, 1, 2), 40), "刘洋"),
    ]
    day_typo, day_swap = _typo(person, 13), _swap(person, 10)  # 19800506 -> ...07, -> 19805006
    assert not is_valid(day_typo) and not is_valid(day_swap)
    records = [
        (outsider, "张伟"),
        (day_typo, "张传"),  # and a given name nothing like the person's
        (day_swap, "张良"),
        (mistyped_in_register, "王芳"),
    ]
    met = _met(records, persons, china)
    assert met == {0: set(), 1: {0}, 2: {0}, 3: {2}}


def test_an_excel_float_beside_a_shortened_name_meets_the_longer_names_only():
    """An Excel-mangled ID keeps the county and the decade; the rules for a name with a
    character lost (石红 for 石娟红 or 石红军) propose persons with a longer name that keeps
    its surname and one of the given characters, not every 石 of the decade with a name
    of the same length."""
    china = Settings.load("china")
    born = date(1985, 7, 1)
    persons = [
        (make_id(AREA, born, 10), "石娟红"),
        (make_id(AREA, born, 12), "石红军"),
        (make_id(AREA, born, 14), "石明"),
        (make_id(AREA, born, 16), "石丽"),
        (make_id(AREA, date(1968, 2, 2), 18), "石娟红"),  # another decade
    ]
    records = [("4.33124198E+17", "石红"), ("4.33124198E+17", "石丽红")]
    left = _people(records, "id_raw").with_row_index(LI)
    right = _people(persons, "id_number").with_row_index(RI)
    assert left["id_prefix9"].to_list() == ["433124198"] * 2
    blocking = candidates(left, right, china)
    by_rule = blocking.by_rule
    assert by_rule["id_prefix9+surname+given_first"] == 1  # 石红 -> 石红军
    assert by_rule["id_prefix9+surname+given_last"] == 1  # 石红 -> 石娟红
    met = {li: set() for li in range(2)}
    for li, ri in blocking.pairs.select(LI, RI).iter_rows():
        met[li].add(ri)
    assert met == {0: {0, 1}, 1: set()}


def test_a_rule_with_more_than_one_edit_is_refused(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text(
        "name: x\ncomparisons: []\nblocking: [{columns: [id18], edits: 2}]\n", encoding="utf-8"
    )
    with pytest.raises(GuardlineError, match="edits is 0 or 1"):
        Settings.load(bad)
