"""The suites as Great Expectations judges them: every per-row check answered by polars
(a 0/1 column) and judged by GX gives the verdict GX gives on the column itself."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from connectors.validation import ROW_CHECKS, _row_answer

FRAME = pl.DataFrame(
    {
        "kind": ["正常", "冲销", None, "退费", "正常", None, "正常", "正常", "冲销", "x"],
        "cost": [5.0, -10.0, None, 10_000_001.0, 0.0, 3.5, None, 10_000_000.0, -10_000_000.0, 1e9],
        "day": [date(2026, 11, d) if d else None for d in (1, 2, None, 4, None, 6, 7, 8, 9, 10)],
        "key": ["a", "b", "a", None, "c", "d", "d", "d", None, "e"],
        "ok": [True, True, False, None, True, True, True, False, True, True],
    }
)
CASES = [
    ("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["正常", "冲销"], "mostly": 0.9}),
    ("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["正常", "冲销"], "mostly": 0.7}),
    ("expect_column_values_to_be_in_set", {"column": "ok", "value_set": [True], "mostly": 0.5}),
    (
        "expect_column_values_to_be_between",
        {"column": "cost", "min_value": -10_000_000, "max_value": 10_000_000, "mostly": 0.7},
    ),
    (
        "expect_column_values_to_be_between",
        {"column": "cost", "min_value": -10_000_000, "max_value": 10_000_000, "strict_max": True},
    ),
    ("expect_column_values_to_be_between", {"column": "cost", "min_value": 0, "mostly": 0.5}),
    ("expect_column_values_to_be_between", {"column": "cost", "max_value": 0, "strict_min": True}),
    ("expect_column_values_to_not_be_null", {"column": "day", "mostly": 0.95}),
    ("expect_column_values_to_not_be_null", {"column": "day", "mostly": 0.8}),
    ("expect_column_values_to_be_unique", {"column": "key", "mostly": 0.5}),
    ("expect_column_values_to_be_unique", {"column": "key", "mostly": 0.3}),
]


@pytest.fixture(scope="module")
def gx_batch():
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("t")
    asset = source.add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole")

    def run(frame: pl.DataFrame, kind: str, kwargs: dict) -> dict:
        batch = definition.get_batch(batch_parameters={"dataframe": frame.to_pandas()})
        expectation = gx.expectations.registry.get_expectation_impl(kind)(**kwargs)
        result = batch.validate(expectation, result_format="SUMMARY")
        r = result.result
        return {
            "success": result.success,
            "element_count": r.get("element_count"),
            "unexpected_count": r.get("unexpected_count"),
            "unexpected_percent": round(float(r.get("unexpected_percent") or 0), 9),
        }

    return run


def test_the_checks_cover_every_per_row_expectation_the_suites_use():
    import json
    from pathlib import Path

    used = {
        e["type"]
        for f in (Path(__file__).parents[1] / "connectors" / "suites").glob("*.json")
        for e in json.loads(f.read_text(encoding="utf-8"))["expectations"]
        if e["type"].startswith("expect_column_values_")
    }
    assert used <= set(ROW_CHECKS)


@pytest.mark.parametrize(("kind", "kwargs"), CASES, ids=[f"{k[19:]}-{i}" for i, (k, _) in enumerate(CASES)])
def test_a_check_judged_on_its_answer_is_judged_as_on_its_column(gx_batch, kind, kwargs):
    name, answer = _row_answer(kind, kwargs["column"], kwargs)
    direct = gx_batch(FRAME.select(kwargs["column"]), kind, kwargs)
    judged = gx_batch(
        FRAME.select(answer.alias(name)),
        "expect_column_values_to_be_in_set",
        {"column": name, "value_set": [1], **({"mostly": kwargs["mostly"]} if "mostly" in kwargs else {})},
    )
    assert judged == direct
    assert direct["unexpected_count"] > 0  # every case has rows that miss: the comparison is not vacuous
