"""The matching model as data: comparisons (each of a kind in matching/comparisons.py,
which knows its levels), blocking rules, decision thresholds. One engine, several
settings (the Chinese register, FEBRL4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from guardline.errors import GuardlineError
from matching.comparisons import KINDS, Kind

SETTINGS = Path(__file__).with_name("settings")


@dataclass(frozen=True)
class Comparison:
    """One field compared between a record (left) and a register person (right)."""

    name: str
    kind: str
    column: str
    tf: bool = False
    pinyin: str | None = None  # name: the pinyin column
    fuzzy: str | None = None  # name: the pinyin column with near sounds folded (-ng/-n, zh/z)
    prefix: str | None = None  # id_number: the reliable-prefix column of mangled IDs
    parent: str | None = None  # place: the enclosing place (township of a village)
    thresholds: tuple[float, ...] = ()  # string: Jaro-Winkler bands; edits: distances
    # Neutral (missing) where both sides have this column: a field read from the ID
    # number says nothing the ID comparison has not said already.
    unless: str | None = None

    @cached_property
    def of_kind(self) -> Kind:
        """Its kind, with the parameters above: the levels and how a pair reaches each."""
        return KINDS[self.kind].of(self)

    @property
    def levels(self) -> tuple[str, ...]:
        """Level labels, best first; the last one is disagreement."""
        return self.of_kind.labels


@dataclass(frozen=True)
class BlockingRule:
    columns: tuple[str, ...]
    fast_path: bool = False
    only_id_kinds: tuple[str, ...] = ()
    only_without: tuple[str, ...] = ()  # only records that lack all of these (e.g. any place)

    @property
    def label(self) -> str:
        return "+".join(self.columns)


@dataclass(frozen=True)
class Settings:
    name: str
    comparisons: tuple[Comparison, ...]
    blocking: tuple[BlockingRule, ...]
    max_block: int = 400
    upper: float = 0.95
    lower: float = 0.3
    margin: float = 0.5
    random_pairs: int = 300_000
    # A night scores with the model saved by an earlier night; it fits a new one when the
    # saved model is this many days old (or on request: ``guardline match --refit``).
    refit_days: int = 28
    # A record on the fast path (an exact checksum-valid ID found in the register) is that
    # person unless one of these comparisons disagrees outright: a name one character off
    # or a near-homophone does not overrule an ID. Empty: the fast path is scored as any pair.
    exact_id_vetoes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Settings:
        """Settings by name (``china``, ``febrl4``) or from a YAML file."""
        path = Path(name_or_path)
        if not path.exists():
            path = SETTINGS / f"{name_or_path}.yaml"
        if not path.exists():
            raise GuardlineError(f"no matching settings {name_or_path!r}")
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        comparisons = []
        for c in raw["comparisons"]:
            if c["kind"] not in KINDS:
                raise GuardlineError(
                    f"{path.name}: comparison {c.get('name')!r} has unknown kind {c['kind']!r}"
                )
            comparisons.append(Comparison(**{**c, "thresholds": tuple(c.get("thresholds", ()))}))
        blocking = tuple(
            BlockingRule(
                tuple(b["columns"]),
                b.get("fast_path", False),
                tuple(b.get("only_id_kinds", ())),
                tuple(b.get("only_without", ())),
            )
            for b in raw["blocking"]
        )
        t = raw.get("thresholds", {})
        vetoes = tuple(raw.get("exact_id_vetoes", ()))
        unknown = set(vetoes) - {c.name for c in comparisons}
        if unknown:
            raise GuardlineError(f"{path.name}: exact_id_vetoes names no comparison: {sorted(unknown)}")
        return cls(
            raw["name"],
            tuple(comparisons),
            blocking,
            raw.get("max_block", 400),
            t.get("upper", 0.95),
            t.get("lower", 0.3),
            t.get("margin", 0.5),
            raw.get("random_pairs", 300_000),
            raw.get("refit_days", 28),
            vetoes,
        )
