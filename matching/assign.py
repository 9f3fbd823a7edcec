"""Decisions: every record matched to at most one person, sent to review with its
candidates and reasons, or left unmatched; never forced onto a namesake.

A record is matched when its best candidate's probability reaches the upper
threshold and no other person comes within ``margin`` of it, or when its exact
checksum-valid ID found its person and none of the settings' vetoes disagrees (a name
one character off lowers the probability, it does not overrule the ID); it goes to review when
the best reaches the lower threshold (or two persons are too close to call); below,
it stays unmatched. Every decision keeps its explanation: the level and weight of each
field, in words.
"""

from __future__ import annotations

import polars as pl

from matching.blocking import LI, RI
from matching.compare import gamma_name
from matching.model import Model

# The candidates a record in review offers its reviewer, best first: enough that a record
# whose misspelt name is another person's exact name (two namesakes, then its person) still
# shows its person.
REVIEW_CANDIDATES = 5


def with_explanation(pairs: pl.DataFrame, model: Model) -> pl.DataFrame:
    """``pairs`` (their levels, weights and probability) with what each means, in words:
    '证件号码 exact +13.1 · 姓名 same pinyin +6.0 · … → 0.9998'. A field one side lacks
    weighs nothing and is left out: written as 'missing +0.0', five of a county record's
    nine fields were half of the words, held through matching, the stage and the
    warehouse for 1.7 million records.

    A comparison's words depend on its level and its rounded weight alone, so they are
    written once per distinct pair of the two (a few hundred in a county) and joined to
    the pairs: formatted pair by pair, the words were most of what matching a county's
    records cost after the comparisons themselves."""
    words = []
    for i, c in enumerate(model.settings.comparisons):
        level, weight = gamma_name(c), f"__w{i}"
        seen = pairs.select(level, pl.col(f"w_{c.name}").round(1).cast(pl.String).alias(weight))
        label = pl.col(level).replace_strict(list(range(len(c.levels))), c.levels, default=None, return_dtype=pl.String)
        table = seen.unique().with_columns(
            pl.format("{} {} {}", pl.lit(c.name), label, pl.col(weight).str.replace(r"^(\d)", "+$1")).alias(f"__e{i}")
        )
        words.append(seen.join(table, on=[level, weight], how="left", maintain_order="left", nulls_equal=True)[f"__e{i}"])
    text = pl.concat_str(
        [
            pl.concat_str([pl.col(w.name) for w in words], separator=" · ", ignore_nulls=True),
            pl.lit(" → "),
            pl.col("match_probability").round(4).cast(pl.String),
        ]
    )
    return pairs.with_columns(words).with_columns(text.alias("explanation")).drop(w.name for w in words)


def trusted(model: Model) -> pl.Expr:
    """Pairs of the fast path (an exact valid ID) that no veto comparison disagrees with."""
    s = model.settings
    if not s.exact_id_vetoes:
        return pl.lit(False)
    by_name = {c.name: c for c in s.comparisons}
    return pl.col("fast_path") & pl.all_horizontal(
        pl.col(gamma_name(by_name[v])) != by_name[v].of_kind.disagree for v in s.exact_id_vetoes
    )


def decide(scored: pl.DataFrame, model: Model) -> pl.DataFrame:
    """One row per left record of the scored pairs: status, the chosen person (if any),
    probability, method, explanation, and for review the candidates. A record's pairs
    must all be in ``scored``.

    The explanation is written for the pairs a decision keeps (each record's best, a
    record in review's first few), not for every compared pair: a county compares
    several pairs per record, and the words are most of what a decision costs.
    """
    s = model.settings
    ranked = scored.with_columns(trusted(model).alias("trusted")).sort(
        [LI, "match_probability", RI],
        descending=[False, True, False],  # ties: the register's order
    )
    first = ranked.filter(pl.col(LI).is_first_distinct())
    second = ranked.filter(~pl.col(LI).is_first_distinct()).filter(pl.col(LI).is_first_distinct())
    best = with_explanation(first, model).select(
        LI,
        pl.col(RI).alias("best"),
        pl.col("match_probability").alias("p_best"),
        "fast_path",
        "trusted",
        "explanation",
    ).join(second.select(LI, pl.col("match_probability").alias("p_second")), on=LI, how="left")
    best = best.with_columns(pl.col("p_second").fill_null(0.0))
    clear = ((pl.col("p_best") >= s.upper) & (pl.col("p_best") - pl.col("p_second") >= s.margin)) | pl.col(
        "trusted"
    )
    decided = best.with_columns(
        pl.when(clear)
        .then(pl.lit("matched"))
        .when(pl.col("p_best") >= s.lower)
        .then(pl.lit("review"))
        .otherwise(pl.lit("unmatched"))
        .alias("match_status"),
    ).with_columns(
        pl.when(pl.col("match_status") == "matched").then(pl.col("best")).alias(RI),
        pl.when(pl.col("match_status") == "matched")
        .then(pl.when(pl.col("fast_path")).then(pl.lit("exact id")).otherwise(pl.lit("probabilistic")))
        .when(pl.col("match_status") == "review")
        .then(pl.lit("needs review"))
        .otherwise(pl.lit("no candidate above threshold"))
        .alias("match_method"),
        pl.col("p_best").alias("match_probability"),
    )
    in_review = decided.filter(pl.col("match_status") == "review").select(LI)
    offered = (
        with_explanation(
            ranked.join(in_review, on=LI, how="semi").group_by(LI, maintain_order=True).head(REVIEW_CANDIDATES),
            model,
        )
        .group_by(LI, maintain_order=True)
        .agg(pl.struct(RI, "match_probability", "explanation").alias("candidates"))
    )
    return decided.join(offered, on=LI, how="left").drop("best", "p_best", "trusted")


def every_record(decided: pl.DataFrame, n_left: int) -> pl.DataFrame:
    """The decisions of all ``n_left`` records, one row each (not in record order): those
    decided, then those without a candidate pair, unmatched. Appended rather than joined:
    a join copied every decision's words again (0.5 GB more at 1.7M records)."""
    every = pl.DataFrame({LI: pl.arange(0, n_left, eager=True, dtype=pl.UInt32)})
    alone = every.join(decided.select(LI), on=LI, how="anti").with_columns(
        pl.lit("unmatched").alias("match_status"),
        pl.lit("no candidate").alias("match_method"),
        pl.lit(0.0).alias("match_probability"),
    )
    return pl.concat([decided, alone], how="diagonal_relaxed")
