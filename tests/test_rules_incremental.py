"""A night's features continued from an earlier night's equal the features computed for
every household, whatever changed between the two: windows that moved (days or weeks
apart), links that moved to another household or were lost, records with new values, a
冲销 cancelling a settlement of another household than its own link."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from rules import incremental
from rules.features import feature_table
from rules.incremental import Earlier, changed_since, continued, households_to_compute, link_hashes
from rules.run import inputs_from
from tests.conftest import AS_OF

EARLIER = date(2026, 11, 2)


@pytest.fixture(autouse=True)
def every_share(monkeypatch):
    """Continue whatever share of the households is to compute (a night continues only
    below ``MOST`` of them; these compare the continuing path itself)."""
    monkeypatch.setattr(incremental, "MOST", 1.0)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """A county's records and true links, as the rules read them."""
    from connectors.ingest import read_inbox
    from synth.generate import generate
    from synth.truth_files import true_links

    out = generate(tmp_path_factory.mktemp("rules_incremental"), households=1200, seed=13, as_of=AS_OF).out
    records = read_inbox(out / "inbox", AS_OF)
    links = true_links(out / "truth", records["registry"])
    return records, links


def _changed_night(records: dict, links: pl.DataFrame, night: date) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    """The records and links of a later night: ten links moved to another person's
    household, ten lost, twenty settlements with new values and dates, one new 冲销
    (linked to nobody) cancelling a counted settlement; and the records changed."""
    records = dict(records)
    people = records["registry"].select("person_id", "household_id").sort("person_id")
    matched = links.filter(pl.col("match_status") == "matched").sort("source", "source_record_id")
    moved = matched.gather_every(97).head(10)
    lost = matched.gather_every(89, offset=5).head(10)
    others = people.sample(10, seed=3, with_replacement=True)
    moved = moved.with_columns(others["person_id"].alias("person_id"), others["household_id"].alias("household_id"))
    lost = lost.with_columns(
        pl.lit(None, pl.String).alias("person_id"),
        pl.lit(None, pl.String).alias("household_id"),
        pl.lit("unmatched").alias("match_status"),
    )
    later = pl.concat([links.join(pl.concat([moved, lost]), on=["source", "source_record_id"], how="anti"), moved, lost])
    health = records["health_insurance"]
    counted = health.filter(pl.col("settlement_type") == "正常").join(
        matched.filter(pl.col("source") == "health_insurance").select("source_record_id"), on="source_record_id"
    )
    edited = counted.gather_every(23).head(20).with_columns(
        (pl.col("self_pay") * 3).alias("self_pay"),
        (pl.col("settlement_date") - timedelta(days=100)).alias("settlement_date"),
    )
    original = counted.filter(pl.col("settlement_date") > night - timedelta(days=200)).row(7, named=True)
    reversal = pl.DataFrame([original], schema=health.schema).with_columns(
        pl.lit("冲销").alias("settlement_type"),
        pl.col("settlement_id").alias("original_settlement_id"),
        (pl.col("settlement_id") + "R").alias("settlement_id"),
        (pl.col("source_record_id") + "R").alias("source_record_id"),
        pl.lit(night - timedelta(days=1)).alias("settlement_date"),
        -pl.col("self_pay"),
    )
    new = pl.concat([edited, reversal])
    records["health_insurance"] = pl.concat([health.join(new, on="source_record_id", how="anti"), new])
    changed = new.select(pl.lit("health_insurance").alias("source"), "source_record_id")
    return records, later, changed


def _continue(records_before, links_before, records, links, changed, night):
    before = inputs_from(records_before, links_before)
    earlier = Earlier(EARLIER, feature_table(before, EARLIER))
    inputs = inputs_from(records, links)
    households = households_to_compute(
        inputs, earlier, changed, night, (link_hashes(links), link_hashes(links_before))
    )
    return continued(earlier, inputs, households, night), households, feature_table(inputs, night).sort("household_id")


@pytest.mark.parametrize("days", [1, 13, 28])
def test_features_continued_over_moving_windows_equal_every_household_computed(county, days):
    records, links = county
    night = EARLIER + timedelta(days=days)
    got, households, every = _continue(records, links, records, links, links.head(0).select("source", "source_record_id"), night)
    assert got.equals(every)
    assert 0 < households.len() < every.height  # windows moved for some households only


@pytest.mark.parametrize("days", [1, 28])
def test_features_continued_over_changed_records_and_links_equal_every_household_computed(county, days):
    records, links = county
    night = EARLIER + timedelta(days=days)
    later, later_links, changed = _changed_night(records, links, night)
    got, households, every = _continue(records, links, later, later_links, changed, night)
    assert got.equals(every)
    assert households.len() < every.height


def test_nothing_changed_and_no_edge_passed_computes_nobody(county):
    records, links = county
    inputs = inputs_from(records, links)
    earlier = Earlier(EARLIER, feature_table(inputs, EARLIER))
    hashes = link_hashes(links)
    none = households_to_compute(inputs, earlier, links.head(0).select("source", "source_record_id"), EARLIER, (hashes, hashes))
    assert none.len() == 0
    assert continued(earlier, inputs, none, EARLIER).equals(earlier.features.sort("household_id"))


def test_above_most_of_the_households_every_one_is_computed(county, monkeypatch):
    records, links = county
    inputs = inputs_from(records, links)
    earlier = Earlier(EARLIER, feature_table(inputs, EARLIER))
    households = earlier.features["household_id"]
    monkeypatch.setattr(incremental, "MOST", 0.4)
    assert continued(earlier, inputs, households.head(int(0.4 * households.len())), EARLIER) is not None
    assert continued(earlier, inputs, households.head(int(0.4 * households.len()) + 1), EARLIER) is None


def test_the_records_changed_since_are_those_above_the_earlier_nights_versions():
    versions = {
        "health_insurance": pl.DataFrame({"source_record_id": ["a", "b", "c"], "version": [0, 4, 7]}),
        "human_resources.rs_contribution_month": pl.DataFrame({"source_record_id": ["m"], "version": [2]}),
        "civil_affairs": pl.DataFrame({"source_record_id": ["z"], "version": [1]}),  # staged since: no mark
    }
    marks = {"health_insurance": 4, "human_resources.rs_contribution_month": 2}
    got = changed_since(versions, marks).sort("source", "source_record_id").rows()
    assert got == [("civil_affairs", "z"), ("health_insurance", "c")]
