"""The review queue: the records matching could not decide go to a person (the review
workbook of ``lists.review``), the decisions come back.

``read_decisions`` reads the workbook or its CSV back — 来源, 记录编号, 候选人编号 and 判断
(是同一人 / 不是 / 无法判断), found by their headers — checks every row and reports every
mistake (file, row and field) at once; ``import_review`` remembers the decisions in the
stage; matching then applies them, so a decided record is never sent to review again: an
accepted candidate is its person (method ``reviewed``), a record whose candidates were all
rejected stays unmatched. 无法判断 leaves the record in review.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl

from guardline.csvsafe import revive
from guardline.errors import GuardlineError
from staging.stage import Stage

KEY = ["source", "source_record_id"]
# The departments as a reviewer names them, and the answers a reviewer gives.
SOURCE_WORDS = {"civil_affairs": "民政", "health_insurance": "医保", "emergency_management": "应急", "human_resources": "人社"}
CHOICES = {"是同一人": "accept", "不是": "reject", "无法判断": None}
NEEDED = ("来源", "记录编号", "候选人编号", "判断")


def _rows(path: Path) -> list[dict[str, str]]:
    """The review file's rows by header (a workbook's first sheet with the columns, or a CSV)."""
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise GuardlineError(f"{path.name}: not a readable workbook ({type(exc).__name__})") from None
        try:
            for ws in wb.worksheets:
                table = [["" if v is None else str(v).strip() for v in r] for r in ws.iter_rows(values_only=True)]
                if table and all(n in table[0] for n in NEEDED):
                    return [dict(zip(table[0], r, strict=False)) for r in table[1:]]
        finally:
            wb.close()
        raise GuardlineError(f"{path.name}: no sheet with the columns {'、'.join(NEEDED)}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    rows = [{k: revive(v) if isinstance(v, str) else v for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
    missing = [c for c in NEEDED if not rows or c not in rows[0]]
    if missing:
        raise GuardlineError(f"{path.name}: row 1: missing column {'、'.join(missing)}")
    return rows


def read_decisions(path: Path, persons: pl.DataFrame) -> pl.DataFrame:
    """The reviewer's decisions, every row checked (a known source and person, an answer of
    the list, at most one 是同一人 per record): all mistakes in one error, by file, row and
    field; (source, source_record_id, person_id, decision accept|reject) otherwise."""
    by_word = {w: code for code, w in SOURCE_WORDS.items()}
    known = set(persons["person_id"])
    out, problems = [], []
    for n, row in enumerate(_rows(path), start=2):
        answer = (row.get("判断") or "").strip()
        if not answer:
            continue
        person = (row.get("候选人编号") or "").strip()
        source = by_word.get((row.get("来源") or "").strip())
        mistakes = []
        if answer not in CHOICES:
            mistakes.append(("判断", f"{answer!r} is not one of {' / '.join(CHOICES)}"))
        if source is None:
            mistakes.append(("来源", f"{row.get('来源')!r} is not one of {' / '.join(by_word)}"))
        if person not in known:
            mistakes.append(("候选人编号", f"{person!r} is not a person of the register"))
        problems += [f"{path.name}: row {n}: {field}: {reason}" for field, reason in mistakes]
        if not mistakes and CHOICES[answer] is not None:
            out.append((source, (row.get("记录编号") or "").strip(), person, CHOICES[answer]))
    frame = pl.DataFrame(out, schema=[*KEY, "person_id", "decision"], orient="row")
    twice = frame.filter(pl.col("decision") == "accept").group_by(KEY).len().filter(pl.col("len") > 1)
    problems += [
        f"{path.name}: 判断: {SOURCE_WORDS[s]} {r} has {k} candidates marked 是同一人 (one at most)" for s, r, k in twice.iter_rows()
    ]
    if problems:
        raise GuardlineError(f"{len(problems)} problems, nothing imported:\n" + "\n".join(problems))
    return frame


def import_review(stage: Stage, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A reviewer's decisions, checked, remembered from the latest night matched on, and
    applied to that night's links — the decisions and the links together, or neither.
    An earlier night re-run later keeps the decisions it had. (decisions, links)."""
    nights = stage.nights("links")
    if not nights:
        raise GuardlineError(f"no links in {stage.root}: run `guardline match` first")
    night = nights[-1]
    persons = stage.records("registry", night)
    if persons is None:
        raise GuardlineError("no register staged yet")
    decisions = read_decisions(path, persons)
    with stage.transaction():
        stage.add_decisions(decisions, night)
        links = apply_decisions(stage.nightly("links", night), stage.decisions(night), persons)
        stage.save_nightly("links", night, links)
    return decisions, links


def apply_decisions(
    links: pl.DataFrame, decisions: pl.DataFrame | None, persons: pl.DataFrame
) -> pl.DataFrame:
    """Links with the reviewers' decisions applied: accepted → matched (reviewed); a
    record whose candidates were all rejected (none accepted) → unmatched (reviewed)."""
    if decisions is None or decisions.height == 0:
        return links
    accepted = (
        decisions.filter(pl.col("decision") == "accept")
        .join(persons.select("person_id", "household_id"), on="person_id", how="left")
        .select(
            *KEY,
            pl.col("person_id").alias("__p"),
            pl.col("household_id").alias("__h"),
            pl.lit("matched").alias("__s"),
        )
    )
    rejected = (
        decisions.filter(pl.col("decision") == "reject")
        .select(KEY)
        .unique()
        .join(accepted.select(KEY), on=KEY, how="anti")
        .with_columns(
            pl.lit(None, pl.String).alias("__p"),
            pl.lit(None, pl.String).alias("__h"),
            pl.lit("unmatched").alias("__s"),
        )
    )
    decided = pl.concat([accepted, rejected])
    return (
        links.join(decided, on=KEY, how="left")
        .with_columns(
            pl.when(pl.col("__s").is_not_null())
            .then(pl.col("__p"))
            .otherwise(pl.col("person_id"))
            .alias("person_id"),
            pl.when(pl.col("__s").is_not_null())
            .then(pl.col("__h"))
            .otherwise(pl.col("household_id"))
            .alias("household_id"),
            pl.coalesce("__s", "match_status").alias("match_status"),
            pl.when(pl.col("__s").is_not_null())
            .then(pl.lit("reviewed"))
            .otherwise(pl.col("match_method"))
            .alias("match_method"),
        )
        .drop("__p", "__h", "__s")
    )
