"""Reading the lists cadres return: the township workbooks (or their CSVs) with 核查结果,
核查人, 核查日期 filled in — renamed, re-sorted, with columns added or rows deleted.

The columns are found by their headers, wherever they are; every row is checked and
every mistake reported with its file, row and field (not only the first); the rows that
pass become visits, one per household and rule of the list the row belongs to.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from guardline.errors import GuardlineError
from rules.catalogue import Catalogue
from staging.stage import Stage
from visits.config import VisitConfig
from visits.dispositions import VISIT_SCHEMA, flag_sources, worsens_figure

HEADER = ("户编号", "清单日期", "核查结果", "核查人", "核查日期", "帮扶措施", "备注")
NEEDED = ("户编号", "清单日期", "核查结果", "核查日期")


@dataclass(frozen=True)
class Problem:
    file: str
    row: int
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.field} {self.value!r}: {self.reason}"


@dataclass
class FileImport:
    file: str
    checksum: str
    status: str  # imported, already imported, refused
    visits: int = 0
    households: int = 0
    problems: list[Problem] = field(default_factory=list)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lstrip("'")


def _table(path: Path) -> list[list[object]]:
    """The rows of the sheet (or CSV) that holds the list's header."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise GuardlineError(f"{path.name}: not a readable workbook ({type(exc).__name__})") from None
        try:
            sheets = sorted(wb.worksheets, key=lambda ws: ws.title != "核查清单")
            for ws in sheets:
                rows = [list(r) for r in ws.iter_rows(values_only=True)]
                if _header_at(rows) is not None:
                    return rows
        finally:
            wb.close()
        raise GuardlineError(f"{path.name}: no sheet with the columns {'、'.join(NEEDED)}")
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise GuardlineError(f"{path.name}: neither UTF-8 nor GBK")
    rows = [list(r) for r in csv.reader(io.StringIO(text))]
    if _header_at(rows) is None:
        raise GuardlineError(f"{path.name}: no header with the columns {'、'.join(NEEDED)}")
    return rows


def _header_at(rows: list[list[object]]) -> int | None:
    for i, row in enumerate(rows[:10]):
        names = {_cell(v) for v in row}
        if all(n in names for n in NEEDED):
            return i
    return None


DATE_FORMS = (r"^(\d{4})-(\d{1,2})-(\d{1,2})$", r"^(\d{4})/(\d{1,2})/(\d{1,2})$", r"^(\d{4})年(\d{1,2})月(\d{1,2})日$", r"^(\d{4})(\d{2})(\d{2})$", r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$")


def parse_date(value: object) -> date | None:
    """A date as a cadre enters it: a date cell, 2026-12-03, 2026/12/3, 2026年12月3日,
    20261203, or an Excel serial number; None if it is none of these."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 20000 < value < 80000:
            return date(1899, 12, 30) + timedelta(days=int(value))
        return None
    text = _cell(value)
    for form in DATE_FORMS:
        m = re.match(form, text)
        if m:
            try:
                return date(*(int(g) for g in m.groups()))
            except ValueError:
                return None
    return None


def read_returned(
    path: Path, stage: Stage, catalogue: Catalogue, config: VisitConfig, today: date
) -> tuple[pl.DataFrame, list[Problem]]:
    """The visits a returned list records (one row per household and rule) and every
    problem found in it."""
    rows = _table(path)
    at = _header_at(rows)
    assert at is not None
    names = [_cell(v) for v in rows[at]]
    col = {n: names.index(n) for n in HEADER if n in names}
    problems: list[Problem] = []
    found: list[dict] = []
    lists: dict[date, pl.DataFrame | None] = {}
    cited: dict[date, pl.DataFrame] = {}

    def get(row: list[object], name: str) -> object:
        j = col.get(name)
        return row[j] if j is not None and j < len(row) else None

    for number, row in enumerate(rows[at + 1 :], start=at + 2):
        result = _cell(get(row, "核查结果"))
        household = _cell(get(row, "户编号"))
        entered = [n for n in ("核查人", "核查日期", "帮扶措施", "备注") if _cell(get(row, n))]
        if not result and not entered:
            continue  # not visited yet (or a blank line)
        found_before = len(problems)

        def bad(name: str, reason: str, value: object = None, row: list = row, number: int = number) -> None:
            problems.append(Problem(path.name, number, name, _cell(value if value is not None else get(row, name)), reason))

        if not result:
            bad("核查结果", f"empty, while {'、'.join(entered)} filled in: choose one of {' / '.join(config.choices)}")
            continue
        listed_on = parse_date(get(row, "清单日期"))
        if listed_on is None:
            bad("清单日期", "not a date: the row does not come from a list")
            continue
        if listed_on not in lists:
            lists[listed_on] = stage.nightly("flags", listed_on)
        flags = lists[listed_on]
        if flags is None:
            bad("清单日期", f"no list of {listed_on} in this stage")
            continue
        if result not in config.results:
            bad("核查结果", f"not one of {' / '.join(config.choices)}")
        visited = parse_date(get(row, "核查日期"))
        if visited is None:
            bad("核查日期", "empty or not a date (e.g. 2026-12-03)")
        elif visited < listed_on:
            bad("核查日期", f"before the list's date {listed_on}")
        elif visited > today:
            bad("核查日期", f"in the future (today is {today})")
        mine = flags.filter((pl.col("household_id") == household) & (pl.col("status") != "resolved"))
        if mine.height == 0:
            bad("户编号", f"not a household of the list of {listed_on}")
        if len(problems) > found_before:
            continue  # a row with any problem records nothing
        if listed_on not in cited:
            cited[listed_on] = flag_sources(flags, stage.nightly("links", listed_on))
        figures = (
            mine.with_columns(worsens_figure(catalogue))
            .join(cited[listed_on], on=["household_id", "rule_id"], how="left")
            .select("rule_id", "figure", "sources")
        )
        for rule_id, figure, sources in figures.iter_rows():
            found.append(
                {
                    "household_id": household,
                    "rule_id": rule_id,
                    "list_date": listed_on,
                    "result": result,
                    "outcome": config.results[result],
                    "visitor": _cell(get(row, "核查人")) or None,
                    "visit_date": visited,
                    "measures": _cell(get(row, "帮扶措施")) or None,
                    "remarks": _cell(get(row, "备注")) or None,
                    "figure": figure,
                    "sources": sources or "",
                    "row": number,
                }
            )
    frame = pl.DataFrame(found, schema={k: v for k, v in VISIT_SCHEMA.items() if k not in ("file", "file_checksum", "recorded_by")})
    return frame, problems


def import_visits(
    stage: Stage,
    files: list[Path],
    today: date,
    recorded_by: str | None = None,
    catalogue: Catalogue | None = None,
    config: VisitConfig | None = None,
) -> list[FileImport]:
    """Read each returned list and remember its visits in the stage, applying from the
    night after the latest one listed (an earlier night re-run keeps the lists it had).
    A file already imported (same bytes) changes nothing."""
    catalogue = catalogue or Catalogue.load()
    config = config or VisitConfig.load()
    who = recorded_by or getpass.getuser()
    nights = stage.nights("flags")
    if not nights:
        raise GuardlineError(f"no lists in {stage.root}: run a night before importing visits")
    applies_from = nights[-1] + timedelta(days=1)
    done = stage.visit_files()
    out = []
    for path in files:
        if not path.is_file():
            out.append(FileImport(path.name, "", "refused", problems=[Problem(path.name, 0, "(file)", "", "no such file")]))
            continue
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        if checksum in done:
            out.append(FileImport(path.name, checksum, "already imported"))
            continue
        try:
            visits, problems = read_returned(path, stage, catalogue, config, today)
        except GuardlineError as exc:
            out.append(FileImport(path.name, checksum, "refused", problems=[Problem(path.name, 0, "(file)", "", str(exc))]))
            continue
        if visits.height:
            stage.add_visits(
                visits.with_columns(
                    pl.lit(path.name).alias("file"), pl.lit(checksum).alias("file_checksum"), pl.lit(who).alias("recorded_by")
                ),
                applies_from,
            )
            done.add(checksum)
        out.append(
            FileImport(path.name, checksum, "imported", visits.height, visits["household_id"].n_unique(), problems)
        )
    return out
