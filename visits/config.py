"""The visit vocabulary and its consequences, as data (``visits/config.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from guardline.errors import GuardlineError

CONFIG = Path(__file__).with_name("config.yaml")
OUTCOMES = ("identified", "dismissed", "unverified")
VARIABLE = "GUARDLINE_VISITS"


@dataclass(frozen=True)
class VisitConfig:
    results: dict[str, str]  # 核查结果 text -> outcome, in the dropdown's order
    overdue_days: int = 15
    worsens_by: float = 0.2
    reopen_on_new_source: bool = True

    @classmethod
    def load(cls, path: Path | None = None) -> VisitConfig:
        """The province's vocabulary: ``path``, else $GUARDLINE_VISITS, else the default."""
        path = path or Path(os.environ.get(VARIABLE) or CONFIG)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise GuardlineError(f"visit configuration {path}: {exc}") from None
        results = {}
        for entry in raw.get("results") or []:
            text, outcome = str(entry.get("text", "")).strip(), entry.get("outcome")
            if not text or outcome not in OUTCOMES:
                raise GuardlineError(
                    f"visit configuration {path}: each result needs a text and an outcome of {', '.join(OUTCOMES)}: {entry}"
                )
            results[text] = outcome
        if not results:
            raise GuardlineError(f"visit configuration {path}: no results")
        return cls(
            results,
            int(raw.get("overdue_days", 15)),
            float(raw.get("worsens_by", 0.2)),
            bool(raw.get("reopen_on_new_source", True)),
        )

    @property
    def choices(self) -> list[str]:
        return list(self.results)
