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
def test_check_array_does_not_depend_on_row_order(values):
    import polars as pl

    expected = [idnumber.check_character(v) if v and len(v) == 17 and v.isdigit() else None for v in values]
    got = idnumber.check_array(pl.Series("id", values, dtype=pl.String))
    assert got.dtype == pl.String
    assert got.to_list() == expected
