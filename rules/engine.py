"""Rules over the feature table: which households fire which rule, how severely,
which help they need, and the evidence a cadre reads.

Conditions are SQL compiled by polars (``pl.sql_expr``); money thresholds are rounded
half away from zero to 0.01 元 before comparisons, as docs/rules.md says.
"""

from __future__ import annotations

import string
from datetime import date

import polars as pl

from rules.catalogue import Catalogue
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


def thousands(expr: pl.Expr) -> pl.Expr:
    """A whole number of yuan written with thousands separators (38,200)."""
    n = expr.round(0).cast(pl.Int64)
    sign = pl.when(n < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    a = n.abs()
    groups = [a // 1_000_000_000, (a // 1_000_000) % 1000, (a // 1000) % 1000, a % 1000]
    text = pl.lit("")
    started = pl.lit(False)
    for i, g in enumerate(groups):
        piece = pl.when(started).then(g.cast(pl.String).str.zfill(3)).otherwise(g.cast(pl.String))
        show = started | (g > 0) | pl.lit(i == len(groups) - 1)
        sep = pl.when(started).then(pl.lit(",")).otherwise(pl.lit(""))
        text = pl.when(show).then(pl.concat_str(text, sep, piece)).otherwise(text)
        started = show
    return pl.concat_str(sign, text)


def _field(name: str, spec: str) -> pl.Expr:
    col = pl.col(name)
    if spec == ",.0f":
        return thousands(col)
    if spec == ".0%":
        return pl.concat_str((col * 100).round(0).cast(pl.Int64).cast(pl.String), pl.lit("%"))
    if spec:
        raise ValueError(f"sentence format {spec!r} is not supported (use ,.0f or .0%)")
    return col.cast(pl.String)


def sentence_expr(template: str) -> pl.Expr:
    """A sentence template ("近12个月医疗个人负担 {medical_burden:,.0f} 元") as a polars expression."""
    parts: list[pl.Expr] = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if name:
            parts.append(_field(name, spec or ""))
    return pl.concat_str(parts) if parts else pl.lit("")


WORDS = [
    pl.when(pl.col("income_last_year") > 0)
    .then(pl.col("medical_burden") / pl.col("income_last_year"))
    .otherwise(0.0)
    .alias("medical_burden_share"),
    pl.when(pl.col("poor_or_monitored"))
    .then(pl.lit("脱贫户或监测户"))
    .otherwise(pl.lit("一般农户"))
    .alias("medical_basis"),
    pl.concat_str(
        pl.when(pl.col("new_dibao_tekun")).then(pl.lit("新纳入")).otherwise(pl.lit("获")),
        pl.col("assistance_kinds"),
    ).alias("assistance_words"),
]


def _firing_disasters(frame: pl.DataFrame) -> pl.DataFrame:
    """Per fired household (in ``frame``'s order): the disaster records that fire on their
    own — 倒塌/严重损坏, or a positive loss at or above the household's threshold — by key,
    each record's own figures beside it, and the words a cadre reads for each. One
    record's damage is never told with another record's loss."""
    rows = (
        frame.select("disaster_loss_threshold", "disaster_records")
        .with_row_index("__i")
        .explode("disaster_records")
        .unnest("disaster_records")
    )
    fires = rows.filter(
        pl.col("house_damage").is_in(["倒塌", "严重损坏"])
        | ((pl.col("direct_loss") > 0) & (pl.col("direct_loss") >= pl.col("disaster_loss_threshold")))
    ).sort("__i", "source_record_id")
    damage = (
        pl.when(pl.col("house_damage") == "倒塌")
        .then(pl.lit("房屋倒塌"))
        .when(pl.col("house_damage") == "严重损坏")
        .then(pl.lit("房屋严重损坏"))
    )
    loss = pl.when(pl.col("direct_loss") > 0).then(pl.concat_str(pl.lit("直接经济损失 "), thousands(pl.col("direct_loss")), pl.lit(" 元")))
    words = pl.concat_str(
        pl.col("disaster_date").dt.strftime("%Y-%m-%d"),
        pl.lit(" "),
        pl.concat_str(damage, loss, separator=",", ignore_nulls=True),
    )
    per = fires.group_by("__i", maintain_order=True).agg(
        pl.col("source_record_id").alias("records"),
        pl.struct(
            pl.col("disaster_date").dt.strftime("%Y-%m-%d").alias("disaster_date"),
            "house_damage",
            money(pl.col("direct_loss")).alias("direct_loss"),
        ).alias("record_figures"),
        words.str.join("; ").alias("disaster_words"),
    )
    out = frame.with_row_index("__i").select("__i").join(per, on="__i", how="left").sort("__i")
    return out.with_columns(pl.col("records").fill_null(pl.lit([], pl.List(pl.String)))).drop("__i")


def evaluate(features: pl.DataFrame, catalogue: Catalogue, as_of: date) -> pl.DataFrame:
    """One row per (household, rule) that fires, with severity, assistance and evidence."""
    table = with_parameters(features, catalogue, as_of).with_columns(WORDS)
    schema = dict(zip(FLAG_COLUMNS, (pl.String,) * 7 + (pl.List(pl.String),), strict=True))
    found = []
    for rule in catalogue.rules:
        fired = table.with_columns(money(pl.sql_expr(e)).alias(k) for k, e in rule.thresholds.items()).filter(
            pl.sql_expr(rule.condition).fill_null(False)
        )
        if fired.height == 0:
            continue
        evidence = [pl.struct(list(rule.evidence)).alias("figures"), pl.col("records").alias("source_records")]
        if rule.records == "disaster_records":
            detail = _firing_disasters(fired)
            fired = fired.with_columns(detail["record_figures"], detail["disaster_words"])
            records = detail["records"]
            evidence.append(pl.col("record_figures"))  # each fired record's own figures, in its order
        elif rule.records:
            records = fired[rule.records].fill_null(pl.lit([], pl.List(pl.String)))
        else:
            records = pl.Series([[]] * fired.height, dtype=pl.List(pl.String))
        found.append(
            fired.with_columns(records.alias("records"))
            .select(
                "household_id",
                pl.lit(rule.id).alias("rule_id"),
                pl.lit(rule.name).alias("rule_name"),
                pl.sql_expr(rule.severity).alias("severity"),
                pl.sql_expr(rule.assistance).alias("assistance"),
                pl.struct(evidence).struct.json_encode().alias("evidence"),
                sentence_expr(rule.sentence).alias("sentence"),
                "records",
            )
            .cast(schema)
        )
    if not found:
        return pl.DataFrame(schema=schema)
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
