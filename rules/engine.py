"""Rules over the feature table: which households fire which rule, how severely,
which help they need, and the evidence a cadre reads.

Conditions are SQL compiled by polars (``pl.sql_expr``); money thresholds are rounded
half away from zero to 0.01 元 before comparisons, as RULES.md says.
"""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from rules.catalogue import Catalogue, Rule
from rules.features import money

FLAG_COLUMNS = (
    "household_id",
    "rule_id",
    "rule_name",
    "severity",
    "assistance",
    "evidence",
    "sentence",
    "records",
)


def with_parameters(features: pl.DataFrame, catalogue: Catalogue, as_of: date) -> pl.DataFrame:
    counties = features["county"].fill_null("").unique().to_list()
    params = catalogue.parameters_for(counties, as_of.year)
    return features.with_columns(pl.col("county").fill_null("")).join(params, on="county", how="left")


def _words(rule: Rule, row: dict) -> dict:
    extra = {}
    income = row.get("income_last_year") or 0
    extra["medical_burden_share"] = (row.get("medical_burden") or 0) / income if income else 0.0
    extra["damage_words"] = (
        "房屋倒塌,"
        if row.get("disaster_collapsed")
        else "房屋严重损坏,"
        if row.get("disaster_severe")
        else ""
    )
    extra["assistance_words"] = "新纳入农村低保/特困" if row.get("new_dibao_tekun") else "获临时救助"
    return extra


def _records(rule: Rule, row: dict) -> list[str]:
    value = row.get(rule.records) if rule.records else None
    if not value:
        return []
    if rule.records == "disaster_records":  # only the records that fire, each on its own
        threshold = row.get("disaster_amount") or 0
        return [
            r["source_record_id"]
            for r in value
            if r["house_damage"] in ("倒塌", "严重损坏")
            or ((r["direct_loss"] or 0) > 0 and (r["direct_loss"] or 0) >= threshold)
        ]
    return list(value)


def evaluate(features: pl.DataFrame, catalogue: Catalogue, as_of: date) -> pl.DataFrame:
    """One row per (household, rule) that fires, with severity, assistance and evidence."""
    table = with_parameters(features, catalogue, as_of)
    found = []
    for rule in catalogue.rules:
        fired = table.with_columns(money(pl.sql_expr(e)).alias(k) for k, e in rule.thresholds.items()).filter(
            pl.sql_expr(rule.condition).fill_null(False)
        )
        if fired.height == 0:
            continue
        fired = fired.with_columns(
            pl.sql_expr(rule.severity).alias("severity"), pl.sql_expr(rule.assistance).alias("assistance")
        )
        rows = []
        for row in fired.iter_rows(named=True):
            figures = {k: row[k] for k in rule.evidence}
            sentence = rule.sentence.format(**{**row, **_words(rule, row)}) if rule.sentence else ""
            records = _records(rule, row)
            evidence = {"figures": figures, "source_records": records}
            rows.append(
                (
                    row["household_id"],
                    rule.id,
                    rule.name,
                    row["severity"],
                    row["assistance"],
                    json.dumps(evidence, ensure_ascii=False, default=str),
                    sentence,
                    records,
                )
            )
        found.append(
            pl.DataFrame(
                rows,
                schema=dict(zip(FLAG_COLUMNS, (pl.String,) * 7 + (pl.List(pl.String),), strict=True)),
                orient="row",
            )
        )
    if not found:
        return pl.DataFrame(
            schema=dict(zip(FLAG_COLUMNS, (pl.String,) * 7 + (pl.List(pl.String),), strict=True))
        )
    return pl.concat(found).sort("household_id", "rule_id")


def exit_candidates(
    features: pl.DataFrame, flags: pl.DataFrame, catalogue: Catalogue, as_of: date
) -> pl.DataFrame:
    """Monitored households ready to be proposed for exit (有序退出)."""
    table = with_parameters(features, catalogue, as_of)
    return (
        table.filter(
            pl.col("monitored")
            & (pl.col("months_identified") >= catalogue.exit_months)
            & (pl.col("est_income_per_capita") >= pl.col("monitoring_line"))
            & (pl.col("members_can_work") > 0)
        )
        .join(flags.select("household_id").unique(), on="household_id", how="anti")
        .select(
            "household_id",
            "county",
            "township",
            "village",
            "months_identified",
            "est_income_per_capita",
            "monitoring_line",
            "members_can_work",
        )
        .with_columns(pl.lit(as_of).alias("as_of_date"))
        .sort("household_id")
    )
