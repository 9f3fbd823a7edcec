"""Links measured against a ground truth (``truth/links.csv``): precision, recall
and F1 over records whose person is in the register, how many records of people
outside it were linked anyway, and how many went to review."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from guardline.errors import GuardlineError


@dataclass(frozen=True)
class LinkMetrics:
    records: int
    in_register: int
    matched: int
    correct: int
    review: int
    outsiders: int
    outsiders_linked: int

    @property
    def precision(self) -> float:
        return self.correct / self.matched if self.matched else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.in_register if self.in_register else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def review_share(self) -> float:
        return self.review / self.records if self.records else 0.0

    @property
    def outsiders_linked_share(self) -> float:
        return self.outsiders_linked / self.outsiders if self.outsiders else 0.0


def read_truth(folder: Path) -> pl.DataFrame:
    path = folder / "links.csv"
    if not path.exists():
        raise GuardlineError(f"no truth at {path}")
    return pl.read_csv(path, infer_schema=False).rename({"person_id": "true_person_id"})


def link_metrics(links: pl.DataFrame, truth: pl.DataFrame) -> LinkMetrics:
    """Compare links with the truth, record by record (records missing from the links
    count as unmatched)."""
    joined = truth.join(
        links.select("source", "source_record_id", "person_id", "match_status"),
        on=["source", "source_record_id"],
        how="left",
    )
    matched = joined.filter(pl.col("match_status") == "matched")
    outsiders = joined.filter(pl.col("true_person_id").is_null())
    return LinkMetrics(
        records=joined.height,
        in_register=joined.filter(pl.col("true_person_id").is_not_null()).height,
        matched=matched.height,
        correct=matched.filter(pl.col("person_id") == pl.col("true_person_id")).height,
        review=joined.filter(pl.col("match_status") == "review").height,
        outsiders=outsiders.height,
        outsiders_linked=outsiders.filter(pl.col("match_status") == "matched").height,
    )
