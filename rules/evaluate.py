"""Flags measured against a ground truth (``truth/flags.csv``: household_id, rule_id)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class FlagMetrics:
    flagged: int
    expected: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.expected if self.expected else 1.0


def flag_metrics(flags: pl.DataFrame, truth: pl.DataFrame) -> FlagMetrics:
    """Firing flags (new or continuing) against the expected (household, rule) pairs."""
    fired = flags.filter(pl.col("status") != "resolved").select("household_id", "rule_id").unique()
    expected = truth.select("household_id", "rule_id").unique()
    return FlagMetrics(
        fired.height, expected.height, fired.join(expected, on=["household_id", "rule_id"]).height
    )
