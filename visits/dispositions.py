"""What the visits say of tonight's flags: pure functions over frames.

A flag (household, rule) that a cadre verified is settled by the latest visit that
answered it: 纳入监测 takes it off the warning list (onto 已纳入 until the register shows
the household monitored), a dismissal keeps it off while its evidence does not worsen
(the rule's ``worsens`` figure moved by ``worsens_by`` the bad way since the list the
visit answered, or — with ``reopen_on_new_source`` — a record of a department the flag
did not cite then now fires it), 无法核实 leaves it listed. A listed flag whose household nobody visited
for ``overdue_days`` since it was listed (or since the last visit that settled nothing)
is overdue (逾期).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from rules.catalogue import Catalogue
from visits.config import VisitConfig

KEY = ["household_id", "rule_id"]
VISIT_SCHEMA = {
    "household_id": pl.String,
    "rule_id": pl.String,
    "list_date": pl.Date,
    "result": pl.String,
    "outcome": pl.String,
    "visitor": pl.String,
    "visit_date": pl.Date,
    "measures": pl.String,
    "remarks": pl.String,
    "figure": pl.Float64,  # the rule's `worsens` figure on the list the visit answered
    "sources": pl.String,  # the departments whose records the flag cited then, joined by ","
    "file": pl.String,
    "file_checksum": pl.String,
    "row": pl.Int64,
    "recorded_by": pl.String,
}


def worsens_figure(catalogue: Catalogue) -> pl.Expr:
    """Each flag's ``worsens`` figure (from its evidence JSON), null for rules without one."""
    expr = pl.lit(None, pl.Float64)
    for rule in catalogue.rules:
        if rule.worsens:
            name = rule.worsens.removeprefix("-")
            value = pl.col("evidence").str.json_path_match(f"$.figures.{name}").cast(pl.Float64, strict=False)
            expr = pl.when(pl.col("rule_id") == rule.id).then(value).otherwise(expr)
    return expr.alias("figure")


def _worsened(catalogue: Catalogue, by: float) -> pl.Expr:
    """Whether ``figure`` (tonight) moved the bad way by ``by`` from ``figure_then``."""
    expr = pl.lit(False)
    for rule in catalogue.rules:
        if not rule.worsens:
            continue
        now, then = pl.col("figure"), pl.col("figure_then")
        moved = (now <= then * (1 - by)) if rule.worsens.startswith("-") else (now >= then * (1 + by))
        expr = pl.when(pl.col("rule_id") == rule.id).then(moved.fill_null(False)).otherwise(expr)
    return expr


def flag_sources(flags: pl.DataFrame, links: pl.DataFrame | None) -> pl.DataFrame:
    """Per (household, rule): the departments whose records the flag cites, as one sorted
    text ("civil_affairs,health_insurance"); empty where it cites none."""
    if links is None or links.height == 0:
        return flags.select(*KEY, pl.lit("").alias("sources"))
    records = flags.select(*KEY, "records").explode("records")
    # Only the links of the records cited (a few thousand of a county's 1.7 million links).
    source_of = (
        links.select("source_record_id", "source")
        .join(records.select(pl.col("records").alias("source_record_id")), on="source_record_id", how="semi")
        .unique("source_record_id")
    )
    cited = (
        records.join(source_of, left_on="records", right_on="source_record_id", how="inner")
        .group_by(KEY)
        .agg(pl.col("source").unique().sort().str.join(",").alias("sources"))
    )
    return flags.select(KEY).join(cited, on=KEY, how="left").with_columns(pl.col("sources").fill_null(""))


def _new_source() -> pl.Expr:
    """Whether the flag now cites a department it did not cite on the answered list."""
    now, then = pl.col("sources").str.split(","), pl.col("sources_then").fill_null("").str.split(",")
    return (now.list.set_difference(then).list.eval(pl.element().filter(pl.element() != "")).list.len() > 0).fill_null(False)


def latest_visits(visits: pl.DataFrame | None) -> pl.DataFrame:
    """Per (household, rule) the latest answer: of the latest list, then the latest visit."""
    if visits is None or visits.height == 0:
        return pl.DataFrame(schema=VISIT_SCHEMA)
    return visits.sort("list_date", "visit_date").unique(KEY, keep="last", maintain_order=True)


def apply_visits(
    flags: pl.DataFrame,
    visits: pl.DataFrame | None,
    catalogue: Catalogue,
    config: VisitConfig,
    as_of: date,
    links: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``flags`` (one night's, with their lifecycle; ``links``, the night's) with what the visits make of them:
    ``disposition`` (identified, dismissed, reopened: dismissed but worse since, or null),
    ``visit_result``, ``visit_date``, ``listed`` (on tonight's warning list) and
    ``overdue``."""
    last = latest_visits(visits).select(
        *KEY,
        pl.col("outcome").alias("__outcome"),
        pl.col("result").alias("visit_result"),
        "visit_date",
        pl.col("figure").alias("figure_then"),
        pl.col("sources").alias("sources_then"),
    )
    out = (
        flags.with_columns(worsens_figure(catalogue))
        .join(flag_sources(flags, links), on=KEY, how="left")
        .join(last, on=KEY, how="left")
    )
    firing = pl.col("status") != "resolved"
    worse = _worsened(catalogue, config.worsens_by)
    if config.reopen_on_new_source:
        worse = worse | _new_source()
    disposition = (
        pl.when(pl.col("__outcome") == "identified")
        .then(pl.lit("identified"))
        .when((pl.col("__outcome") == "dismissed") & worse)
        .then(pl.lit("reopened"))
        .when(pl.col("__outcome") == "dismissed")
        .then(pl.lit("dismissed"))
    )
    listed = firing & ~pl.col("disposition").is_in(["identified", "dismissed"]).fill_null(False)
    since = pl.max_horizontal(pl.col("first_flagged_date"), pl.col("visit_date"))
    return (
        out.with_columns(disposition.alias("disposition"))
        .with_columns(listed.alias("listed"))
        .with_columns(
            (pl.col("listed") & ((pl.lit(as_of) - since).dt.total_days() >= config.overdue_days)).alias("overdue")
        )
        .drop("__outcome", "figure_then", "sources_then", "sources")
    )
