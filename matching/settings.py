"""The matching model as data: comparisons (each of a kind in matching/comparisons.py,
which knows its levels), blocking rules, decision thresholds. One engine, several
settings (the Chinese register, FEBRL4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
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
    valid: str | None = None  # id_number: whether the ID passes its check digit
    parent: str | None = None  # place: the enclosing place (township of a village)
    thresholds: tuple[float, ...] = ()  # string: Jaro-Winkler bands; edits: distances
    # Neutral (missing) where both sides have this column: a field read from the ID
    # number says nothing the ID comparison has not said already.
    unless: str | None = None
    # m of a level set, not estimated (Splink's fix_m_probability): where EM cannot learn
    # it from the pairs, e.g. because strangers who agree on everything else look to it
    # like matches. The free levels share what is left.
    fixed_m: tuple[tuple[str, float], ...] = ()

    @cached_property
    def of_kind(self) -> Kind:
        """Its kind, with the parameters above: the levels and how a pair reaches each."""
        return KINDS[self.kind].of(self)

    @property
    def levels(self) -> tuple[str, ...]:
        """Level labels, best first; the last one is disagreement."""
        return self.of_kind.labels

    def with_fixed_m(self, m: np.ndarray) -> np.ndarray:
        """``m`` (one share per level) with the fixed levels set and the others scaled to
        share the rest."""
        if not self.fixed_m:
            return m
        out = m.astype(float).copy()
        fixed = np.zeros(len(out), dtype=bool)
        for label, value in self.fixed_m:
            i = self.levels.index(label)
            out[i], fixed[i] = value, True
        free = out[~fixed].sum()
        out[~fixed] *= (1 - out[fixed].sum()) / free if free else 0.0
        return out


@dataclass(frozen=True)
class BlockingRule:
    columns: tuple[str, ...]
    fast_path: bool = False
    only_id_kinds: tuple[str, ...] = ()
    only_without: tuple[str, ...] = ()  # only records that lack all of these (e.g. any place)
    shares: bool = False  # records agreeing on the columns share their candidates
    # The first column, an 18-character ID, may be this many edits (0 or 1: a character
    # substituted, two adjacent ones swapped) from the person's; the others are equal.
    edits: int = 0
    # A pair only unless this boolean column is true on both sides (``id_valid``: two
    # checksum-valid IDs that differ are two people's).
    unless_both: str | None = None
    # A pair only where the record's value of this column is shorter than the person's
    # (``name_key``: rules for a name with a character lost).
    only_shorter: str | None = None

    @property
    def label(self) -> str:
        return "+".join(self.columns) + (f" within {self.edits} edit" if self.edits else "")


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
            fixed_m = tuple((str(k), float(v)) for k, v in (c.get("fixed_m") or {}).items())
            comparison = Comparison(**{**c, "thresholds": tuple(c.get("thresholds", ())), "fixed_m": fixed_m})
            unknown_levels = {k for k, _ in fixed_m} - set(comparison.levels)
            if unknown_levels or sum(v for _, v in fixed_m) >= 1:
                raise GuardlineError(
                    f"{path.name}: comparison {comparison.name!r}: fixed_m must name its levels "
                    f"{list(comparison.levels)} with m summing below 1, not {dict(fixed_m)}"
                )
            comparisons.append(comparison)
        blocking = tuple(_blocking_rule(b, path.name) for b in raw["blocking"])
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


def _blocking_rule(raw: dict[str, Any], where: str) -> BlockingRule:
    rule = BlockingRule(
        tuple(raw["columns"]),
        raw.get("fast_path", False),
        tuple(raw.get("only_id_kinds", ())),
        tuple(raw.get("only_without", ())),
        raw.get("shares", False),
        raw.get("edits", 0),
        raw.get("unless_both"),
        raw.get("only_shorter"),
    )
    if rule.edits not in (0, 1) or (rule.edits and (rule.fast_path or rule.shares)):
        raise GuardlineError(
            f"{where}: blocking rule {rule.label!r}: edits is 0 or 1, and a fast path or a "
            f"shared rule has none, not {rule.edits!r}"
        )
    return rule
