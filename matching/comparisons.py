"""Comparison kinds, as in Splink's comparison library: each kind, registered under
the name a settings YAML gives as ``kind``, says in one place what its levels are
called, which columns it reads and when a pair reaches each level. Adding a kind is
one class here: the rest of the engine asks a comparison's kind what its levels
mean, and never tests the kind's name.

A kind's parameters are dataclass fields named as in the YAML (``column``,
``pinyin``, ``prefix``, ``parent``, ``thresholds``), so that a comparison's entry in
the settings builds its kind (``Kind.of``). Levels are computed vectorised: polars
for equality, rapidfuzz's ``cpdist`` (C++, all cores) for edit distances and
Jaro-Winkler similarity, on a pairs frame that carries every column twice,
``<column>_l`` for the record and ``<column>_r`` for the register person.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import polars as pl
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

from matching.normalise import id_value, prefix_range

# The level of a pair where either side lacks the field: it weighs nothing either way.
MISSING = -1

KINDS: dict[str, type[Kind]] = {}
K = TypeVar("K", bound="type[Kind]")


def kind(name: str) -> Callable[[K], K]:
    """Register a kind under its YAML name."""

    def register(cls: K) -> K:
        KINDS[name] = cls
        return cls

    return register


def _texts(s: pl.Series) -> list[str]:
    return s.fill_null("").to_list()


def _distance(left: pl.Series, right: pl.Series, scorer: Callable[..., Any]) -> np.ndarray:
    if left.len() == 0:
        return np.zeros(0)
    return process.cpdist(_texts(left), _texts(right), scorer=scorer, workers=-1)


def _equal(left: pl.Series, right: pl.Series) -> np.ndarray:
    return (left == right).fill_null(False).to_numpy()


def _true(s: pl.Series) -> np.ndarray:
    """Where a flag column holds True (a column of another type holds no flag)."""
    if s.dtype != pl.Boolean:
        return np.zeros(s.len(), dtype=bool)
    return s.fill_null(False).to_numpy()


def _null(s: pl.Series) -> np.ndarray:
    return s.is_null().to_numpy()


@dataclass(frozen=True)
class Kind(ABC):
    """One kind of comparison of ``column`` between a record and a register person."""

    column: str

    # The level of exact agreement: the one a term frequency re-weights by how common
    # the agreed value is. Every kind's first condition is equality of ``column``.
    exact: ClassVar[int] = 0

    @classmethod
    def of(cls, params: object) -> Kind:
        """This kind with its parameters read from ``params`` (a comparison), by name."""
        return cls(**{f.name: getattr(params, f.name) for f in fields(cls)})

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Level labels, best first; the last one is disagreement."""

    @property
    def disagree(self) -> int:
        """The last level, where no condition holds (for an ID with only its prefix known,
        the model weighs it by how many register IDs share the prefix)."""
        return len(self.labels) - 1

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the levels read (each as ``_l`` and ``_r``), ``column`` first."""
        return (self.column,)

    @abstractmethod
    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        """One boolean array per level but the last, best first: a pair is at the first
        level whose condition holds, and disagrees where none does."""

    def missing(self, pairs: pl.DataFrame) -> np.ndarray:
        """Where the comparison says nothing: either side lacks the column."""
        left, right = self._sides(pairs)
        return _null(left) | _null(right)

    def levels(self, pairs: pl.DataFrame) -> np.ndarray:
        """The level index of every pair (0 = best), ``MISSING`` where it is missing."""
        conditions = self.agreements(pairs)
        out = np.select(conditions, list(range(len(conditions))), default=len(conditions)).astype(np.int8)
        out[self.missing(pairs)] = MISSING
        return out

    def _sides(self, pairs: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
        return pairs[f"{self.column}_l"], pairs[f"{self.column}_r"]


@kind("exact")
@dataclass(frozen=True)
class Exact(Kind):
    """Equal or not (sex, phone, street number)."""

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", "disagree")

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        return [_equal(*self._sides(pairs))]


@kind("date")
@dataclass(frozen=True)
class Date(Kind):
    """A date as text: a mistyped or transposed digit is still close."""

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", "one digit differs", "disagree")

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        return [_equal(left, right), _distance(left, right, DamerauLevenshtein.distance) <= 1]


@kind("id_number")
@dataclass(frozen=True)
class IdNumber(Kind):
    """An ID number, one typo allowed; a record whose number Excel mangled keeps the
    digits Excel kept (``prefix``, a record-side column), rounded: the person's ID may be
    any of the range they stand for."""

    prefix: str | None = None
    # Whether an ID passes its check digit (both sides): two valid IDs more than one edit
    # apart are two people's numbers, far stronger evidence than a garbled one that
    # disagrees (a transposition beside a typo, a digit lost).
    valid: str | None = None

    # Where the record has only the prefix, its ID says which persons it can be: the
    # model weighs this level, and disagreement, by how many IDs share the prefix.
    prefix_agrees: ClassVar[int] = 2

    @property
    def labels(self) -> tuple[str, ...]:
        another = ("another valid ID",) if self.valid else ()
        return ("exact", "one edit", "prefix agrees", *another, "disagree")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column, *(c for c in (self.prefix, self.valid) if c))

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        d = _distance(left, right, DamerauLevenshtein.distance)
        if self.prefix:
            prefix = pairs[f"{self.prefix}_l"]
            low, high = prefix_range(pl.col("p"))
            within = (
                pl.DataFrame({"p": prefix, "id": id_value(right)})
                .select(((pl.col("id") >= low) & (pl.col("id") < high)).fill_null(False))
                .to_series()
                .to_numpy()
            )
            prefix_agrees = ~_null(prefix) & within
        else:
            prefix_agrees = np.zeros(pairs.height, dtype=bool)
        levels = [_equal(left, right), ~_null(left) & (d <= 1), prefix_agrees]
        if self.valid:
            levels.append(_true(pairs[f"{self.valid}_l"]) & _true(pairs[f"{self.valid}_r"]))
        return levels

    def missing(self, pairs: pl.DataFrame) -> np.ndarray:
        """The record needs its ID or its prefix, the person an ID."""
        left, right = self._sides(pairs)
        record_lacks = (_null(left) & _null(pairs[f"{self.prefix}_l"])) if self.prefix else _null(left)
        return record_lacks | _null(right)


@kind("name")
@dataclass(frozen=True)
class Name(Kind):
    """A Chinese name, from exact to disagreement by how a clerk's mistake looks:

    - the same ``pinyin`` (a homophone: 李明/李铭);
    - the same ``fuzzy`` pinyin, -ng read as -n and zh/ch/sh as z/c/s (玲/琳, 金/晶,
      英/银, 明/民: near-homophones a dialect or an input method confuses);
    - one character dropped or added, the surname kept (刘春强/刘强, 张伟/张伟伟);
    - one character replaced in a name of two or more (王伟/王芳: also two strangers);
    - disagreement.
    """

    pinyin: str | None = None
    fuzzy: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return (
            "exact",
            "same pinyin",
            "near pinyin",
            "one character dropped or added",
            "one character differs",
            "disagree",
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column, *(c for c in (self.pinyin, self.fuzzy) if c))

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        none = np.zeros(pairs.height, dtype=bool)
        same_pinyin = _equal(pairs[f"{self.pinyin}_l"], pairs[f"{self.pinyin}_r"]) if self.pinyin else none
        near_pinyin = _equal(pairs[f"{self.fuzzy}_l"], pairs[f"{self.fuzzy}_r"]) if self.fuzzy else none
        d = _distance(left, right, Levenshtein.distance)
        # Signed: len_chars is unsigned, and 2 - 3 must be -1, not 4294967295.
        lengths = tuple(side.str.len_chars().fill_null(0).cast(pl.Int64).to_numpy() for side in (left, right))
        same_surname = _equal(left.str.slice(0, 1), right.str.slice(0, 1))
        dropped_or_added = (
            (d <= 1) & (np.abs(lengths[0] - lengths[1]) == 1) & (np.minimum(*lengths) >= 2) & same_surname
        )
        return [_equal(left, right), same_pinyin, near_pinyin, dropped_or_added, (d <= 1) & (lengths[0] >= 2)]


@kind("string")
@dataclass(frozen=True)
class String(Kind):
    """Free text in Jaro-Winkler bands (``thresholds``, highest first), as Splink's
    ``JaroWinklerAtThresholds``."""

    thresholds: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", *(f"jaro-winkler ≥ {t}" for t in self.thresholds), "disagree")

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        sim = _distance(left, right, JaroWinkler.normalized_similarity)
        return [_equal(left, right), *(sim >= t for t in self.thresholds)]


@kind("edits")
@dataclass(frozen=True)
class Edits(Kind):
    """Codes and numbers in bands of Damerau-Levenshtein distance (``thresholds``,
    fewest first), as Splink's ``DamerauLevenshteinAtThresholds``."""

    thresholds: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", *(f"≤ {int(t)} edits" for t in self.thresholds), "disagree")

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        d = _distance(left, right, DamerauLevenshtein.distance)
        return [_equal(left, right), *(d <= t for t in self.thresholds)]


@kind("number")
@dataclass(frozen=True)
class Number(Kind):
    """A count (a household's size) in bands of absolute difference (``thresholds``,
    smallest first): a team that counted a member away from home is one off."""

    thresholds: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return ("exact", *(f"± {int(t)}" for t in self.thresholds), "disagree")

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        as_number = pl.Float64
        difference = (
            (left.cast(as_number, strict=False) - right.cast(as_number, strict=False))
            .abs()
            .fill_null(float("inf"))
            .to_numpy()
        )
        return [_equal(left, right), *(difference <= t for t in self.thresholds)]


@kind("place")
@dataclass(frozen=True)
class Place(Kind):
    """A village within its ``parent`` township: a record that names only the township
    still agrees or disagrees on it."""

    parent: str

    @property
    def labels(self) -> tuple[str, ...]:
        return ("same village", "same township", "disagree")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column, self.parent)

    def agreements(self, pairs: pl.DataFrame) -> list[np.ndarray]:
        left, right = self._sides(pairs)
        return [_equal(left, right), _equal(pairs[f"{self.parent}_l"], pairs[f"{self.parent}_r"])]

    def missing(self, pairs: pl.DataFrame) -> np.ndarray:
        """Missing only where a side lacks both village and township."""
        left, right = self._sides(pairs)
        parent_l, parent_r = pairs[f"{self.parent}_l"], pairs[f"{self.parent}_r"]
        return (_null(left) & _null(parent_l)) | (_null(right) & _null(parent_r))
