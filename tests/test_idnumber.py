from datetime import date

import pytest

from guardline import idnumber
from guardline.keys import field_text, record_key


def test_check_character_of_the_standard_example():
    # The worked example of GB 11643-1999.
    assert idnumber.check_character("11010519491231002") == "X"
    assert idnumber.is_valid("11010519491231002X")
    assert not idnumber.is_valid("110105194912310021")
    assert not idnumber.is_valid("11010519491231002x")


def test_legacy_form_round_trips():
    id18 = idnumber.make_id("433124", date(1965, 5, 29), 533)
    assert idnumber.is_valid(id18)
    assert idnumber.from_legacy15(idnumber.to_legacy15(id18)) == id18
    assert idnumber.birth_date(id18) == date(1965, 5, 29)
    assert idnumber.sex(id18) == "男"


def test_make_id_rejects_bad_input():
    with pytest.raises(ValueError):
        idnumber.check_character("12345")


def test_key_text_follows_the_contract():
    # A numeric xlsx cell: the integer digits of the stored value, not the double's.
    assert field_text(4.33124199001011e17) == "433124199001011000"
    assert field_text(" 'abc d ") == "'abc d"
    assert field_text(date(2026, 11, 3)) == "2026-11-03"
    assert record_key("rs_contribution_month", " 4331 ", 202611) == "rs_contribution_month|4331|202611"


@pytest.mark.parametrize(
    "values",
    [
        ["abc", "11010519491231002", None, "1101051949123100"],  # first value not 17 digits
        [None, "11010519491231002"],
        ["11010519491231002", "abc"],
        ["abc", None],
        [],
    ],
)
def test_check_expr_does_not_depend_on_row_order(values):
    import polars as pl

    expected = [idnumber.check_character(v) if v and len(v) == 17 and v.isdigit() else None for v in values]
    got = pl.DataFrame({"id": values}, schema={"id": pl.String}).select(idnumber.check_expr(pl.col("id"))).to_series()
    assert got.dtype == pl.String
    assert got.to_list() == expected


def test_valid_expr_agrees_with_the_scalar_rule_on_mangled_ids():
    import random

    import polars as pl

    rng = random.Random(11)
    ids: list[str | None] = [None, "", "X" * 18, "+3312419650529533X", "-33124196505295337", "１" * 18]
    for _ in range(5000):
        id18 = idnumber.make_id("433124", date(1930, 1, 1).fromordinal(rng.randint(704000, 740000)), rng.randrange(1000))
        cut = rng.randrange(18)
        ids += [
            id18,
            id18[:cut] + str(rng.randrange(10)) + id18[cut + 1 :],  # one digit typed again
            id18[:cut] + id18[cut + 1 : cut + 2] + id18[cut : cut + 1] + id18[cut + 2 :],  # a swap
            id18[:17] + rng.choice("0123456789Xx"),
            id18[:17],
            id18 + "0",
            id18[:cut] + rng.choice("aO ") + id18[cut + 1 :],
        ]
    got = pl.DataFrame({"id": ids}, schema={"id": pl.String}).select(idnumber.valid_expr(pl.col("id"), normalised=True))
    expected = [v is not None and idnumber.is_valid(v) for v in ids]
    assert got.to_series().to_list() == expected
    assert 5000 <= sum(expected) < len(ids) / 2  # both answers are well represented
