"""Declarations of the departments' deliveries: what a source is, as data.

A source names its folder, file patterns and format, its columns (the contract's
Chinese header, aliases seen in the wild, the canonical name and type), its record
key, the date that decides its window and the columns that identify a person. One
reader per format and one canonicaliser serve every declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Kind = Literal["text", "id", "date", "money", "int", "number", "period"]


@dataclass(frozen=True)
class Column:
    """One delivered column: contract header, canonical name, type and row-level checks."""

    header: str
    name: str
    kind: Kind = "text"
    required: bool = True  # the header must be in the file (else the batch fails)
    not_empty: bool = False  # a row without a value is quarantined
    allowed: tuple[str, ...] | None = None  # other values are quarantined
    aliases: tuple[str, ...] = ()
    compared: bool = True  # False: a row number like 序号, not a value of the record
    minimum: float | None = None  # a number below it is quarantined (an amount below 0)


@dataclass(frozen=True)
class Check:
    """A row-level rule of a source: rows where ``failing`` is true are quarantined.

    ``failing`` is a polars expression over the canonical columns, written in the
    source's module (code, never configuration).
    """

    field: str
    reason: str
    failing: pl.Expr


@dataclass(frozen=True)
class Identity:
    """Which canonical columns identify the person a record is about."""

    id_number: str
    name: str
    phone: str | None = None
    place: tuple[str, ...] = ()
    # The person's sex as the department recorded it (男/女, or GB/T 2261.1's 1/2), when
    # it does. Never read from the ID number: that is the ID's evidence already, and a
    # typo in its 17th digit would count twice.
    sex: str | None = None
    # The household's size as the department wrote it down (应急 家庭人口): a namesake in
    # the same village rarely lives in a household of the same size.
    household_size: str | None = None
    # The record names a household head (or, by a team's mistake, the spouse): a child or
    # a parent of the same name in the village is less likely its person.
    names_head: bool = False
    # Where the person was treated (医保 定点医药机构名称): a township health centre, a
    # village clinic or a township's pharmacy is named after its place, and is mostly
    # the patient's own; a county or city hospital names no place below the county.
    care_place: str | None = None


@dataclass(frozen=True)
class Source:
    """A department delivery: files in a folder of the inbox, or tables of a database."""

    name: str
    title: str  # the department, as users name it
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    identity: Identity
    event_date: str | None
    fmt: Literal["csv", "xlsx", "csv_or_xlsx", "sql"]
    patterns: tuple[str, ...] = ()
    encoding: str = "utf-8-sig"
    sheet: str | None = None
    key_fallback: tuple[str, ...] = ()  # used when the first key field is blank
    key_prefix: str = ""  # 人社: the table name comes first
    # A key repeated inside one file with other values: the later row supersedes (the
    # departments' corrections), or — where a key names one thing only, like the
    # register's 人编号 — every such row is quarantined, since none can be told right.
    key_conflicts: Literal["supersede", "quarantine"] = "supersede"
    # The record's own amount (元) as analysts see it beside its pseudonym: an expression
    # over the canonical columns, or None for a record without one.
    amount: pl.Expr | None = None
    # Delivered whole (the register): a new export replaces the staged records as a
    # whole, and a night reads the latest export made on or before it.
    snapshot: bool = False
    table: str | None = None  # for a database source: the table (or view) read
    checks: tuple[Check, ...] = ()

    @property
    def folder(self) -> str:
        """Its sub-folder of the inbox."""
        return self.name

    @property
    def stage_name(self) -> str:
        """Where its records are staged: the source, or source/table for databases."""
        return f"{self.name}.{self.table}" if self.table else self.name

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def blank_id_allowed(self) -> bool:
        """Whether the contract lets the ID be blank (a fallback key names the record)."""
        return bool(self.key_fallback)

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)
