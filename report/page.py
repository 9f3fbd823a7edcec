"""The night's report as one HTML file: :class:`report.facts.NightFacts` in, a page out.

One file with everything inside (style, charts as inline SVG, no script, no link to
anything outside but the Great Expectations pages for those who have them), so that it
opens from a shared drive with no network. In Chinese for the county's readers, with the
engineers' identifiers (source names, file names, rule ids) where they need them. Every
figure is in an element with ``data-figure`` so that what the page says can be checked
against the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from report import charts
from report.facts import TREND_NIGHTS, NightFacts
from report.masking import mask_text, masked_row

TEMPLATES = Path(__file__).with_name("templates")
STATUS_WORDS = {"matched": "已匹配", "review": "待审核", "unmatched": "未匹配"}
FLAG_WORDS = {"new": "新增", "continuing": "持续", "resolved": "解除"}
FILE_WORDS = {
    "loaded": "已接收",
    "failed": "拒收",
    "partial": "部分接收",
    "duplicate": "重复文件",
    "skipped": "跳过",
}
REVIEW_AGES = ((0, 1, "今夜或昨夜"), (2, 7, "2–7 夜"), (8, 30, "8–30 夜"), (31, None, "30 夜以上"))


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = lambda v: "–" if v is None else f"{v:,}" if isinstance(v, int) else v
    return env


def render(facts: NightFacts) -> str:
    """The page of one county's night."""
    return _environment().get_template("report.html.j2").render(**context(facts))


def context(f: NightFacts) -> dict[str, Any]:
    """What the template shows, each section from the facts alone."""
    rules = sorted(set(f.flags["rule_id"].drop_nulls()) | set(f.trend["rule_id"].drop_nulls()))
    palette = charts.colours(rules)
    return {
        "f": f,
        "tonight": _tonight(f, rules, palette),
        "sources": _sources(f),
        "linking": _linking(f),
        "run": _run(f),
    }


def _tonight(f: NightFacts, rules: list[str], palette: Mapping[str, str]) -> dict[str, Any]:
    listed = f.flags.filter(pl.col("listed").fill_null(False))
    by_township = (
        listed.with_columns(pl.col("township").fill_null("未知乡镇"))
        .group_by("township", "rule_id")
        .agg(pl.col("household_id").n_unique().alias("households"))
        .sort("township")
    )
    rows = [
        (t, dict(zip(g["rule_id"], g["households"], strict=True)))
        for (t,), g in by_township.group_by("township", maintain_order=True)
    ]
    status = dict(f.flags.group_by("status").len().iter_rows())
    names = rule_names(f)
    days = sorted(set(f.nights_run) | set(f.trend["as_of_date"]))
    counts = {(d, r): n for d, r, n in f.trend.iter_rows()}
    series = {r: [counts.get((d, r), 0) for d in days] for r in rules}
    matrix = [
        {
            "township": t,
            **{r: v.get(r, 0) for r in rules},
            "total": listed.filter(pl.col("township").fill_null("未知乡镇") == t)["household_id"].n_unique(),
        }
        for t, v in rows
    ]
    visits = f.visits.with_columns(
        (pl.col("identified") / pl.col("verified")).fill_nan(None).alias("yield"),
    )
    has_visits = bool(
        visits.select(pl.col("verified", "identified", "dismissed", "overdue").sum()).sum_horizontal().item()
    )
    return {
        "households": listed["household_id"].n_unique(),
        "status": {k: status.get(k, 0) for k in FLAG_WORDS},
        "status_words": FLAG_WORDS,
        "exit_candidates": f.exit_candidates,
        "matrix": matrix,
        "rules": rules,
        "rule_names": names,
        "chart_township": Markup(
            charts.stacked_bars(
                "households_by_township", "待核查户数,按乡镇与规则", rows, rules, palette, labels=names
            )
        )
        if rows
        else None,
        "chart_trend": Markup(
            charts.lines(
                "warnings_trend",
                f"近 {TREND_NIGHTS} 夜每条规则的预警数",
                (f.as_of - timedelta(days=TREND_NIGHTS - 1), f.as_of),
                days,
                series,
                palette,
                labels=names,
            )
        )
        if rules and days
        else None,
        "nights_run": len(days),
        "visits": visits.to_dicts() if has_visits else [],
        "chart_visits": Markup(
            charts.stacked_bars(
                "visit_outcomes",
                "核查结果,按规则",
                [
                    (
                        names.get(r["rule_id"], r["rule_id"]),
                        {"已纳入": r["identified"], "已排除": r["dismissed"], "逾期": r["overdue"]},
                    )
                    for r in visits.to_dicts()
                ],
                ["已纳入", "已排除", "逾期"],
            )
        )
        if has_visits
        else None,
    }


def rule_names(f: NightFacts) -> dict[str, str]:
    """Rule id -> its Chinese name, as the catalogue the night ran with called it."""
    from rules.catalogue import Catalogue

    names = {r.id: r.name for r in Catalogue.load().rules}
    return names | dict(f.flags.select("rule_id", "rule_name").unique("rule_id").drop_nulls().iter_rows())


def _verdict(status: str, warned: bool) -> str:
    """The file's verdict as the night judged it (its ledger status and warnings): a
    file loaded with a warning is not a failed file."""
    if status == "failed":
        return "拒收"
    if status == "partial":
        return "部分接收"
    return "通过,有警告" if warned else "通过"


def _judged(check: dict, status: str) -> str:
    """A check's result as the night judged it: a miss on a file that was loaded was a
    warning (a warning-level check, or a share check on a file too small to judge)."""
    if check["success"]:
        return "通过"
    return "未通过" if status == "failed" and check["severity"] != "warning" else "警告"


def _sources(f: NightFacts) -> dict[str, Any]:
    family = pl.col("source").str.split(".").list.first()
    per_source = (
        f.files.with_columns(family.alias("family"))
        .group_by("family")
        .agg(
            pl.len().alias("files"),
            pl.col("rows_read").sum(),
            pl.col("loaded").sum(),
            pl.col("quarantined").sum(),
            pl.col("duplicates").sum(),
            (pl.col("status") == "failed").sum().alias("refused"),
        )
    )
    table = f.deliveries.join(per_source, left_on="source", right_on="family", how="left").to_dicts()
    files = []
    for row in f.files.to_dicts():
        name = Path(row["file"]).name
        checks = f.checks.filter((pl.col("source") == row["source"]) & (pl.col("file") == row["file"]))
        files.append(
            {
                **row,
                **_samples(f, row["source"], row["file"]),
                "name": name,
                "status_word": FILE_WORDS.get(row["status"], row["status"]),
                "verdict": _verdict(row["status"], bool(row["warnings"])),
                "reason": mask_text(row["reason"] or ""),
                "checks": [{**c, "judged": _judged(c, row["status"])} for c in checks.to_dicts()],
                # an exchange pull that brought back only rows already staged: nothing to judge
                "all_known": bool(row["rows_read"]) and row["duplicates"] == row["rows_read"] and not row["loaded"],
            }
        )
    earlier = [
        {
            **row,
            **_samples(f, row["source"], row["file"]),
            "name": Path(row["file"]).name,
            "status_word": f"自 {row['as_of']} 起拒收,至今未重新交付",
            "reason": mask_text(row["reason"] or ""),
        }
        for row in f.still_refused.to_dicts()
    ]
    return {
        "table": table,
        "files": files,
        "refused": [x for x in files if x["status"] in ("failed", "partial")] + earlier,
        "stale": [r for r in table if r["stale"]],
        "data_docs": f.data_docs.resolve().as_uri() if f.data_docs else None,
    }


def _samples(f: NightFacts, source: str, file: str) -> dict[str, Any]:
    """The first quarantined rows of a file, masked, and the columns they fill (an empty
    column says nothing about the refusal)."""
    rows = f.quarantine.filter((pl.col("source") == source) & (pl.col("file") == file)).to_dicts()
    samples = [
        {
            "row": q["row"],
            "field": q["field"],
            "reason": mask_text(q["reason"] or ""),
            "values": masked_row(q["source"], q["raw"]),
        }
        for q in rows
    ]
    return {
        "samples": samples,
        "sample_headers": list(dict.fromkeys(h for s in samples for h, v in s["values"].items() if v)),
    }


def _linking(f: NightFacts) -> dict[str, Any]:
    from matching.review import SOURCE_WORDS

    sources = sorted(set(f.links["source"]))
    counts = {(s, st): n for s, st, n in f.links.iter_rows()}
    rows = [
        (SOURCE_WORDS.get(s, s), {STATUS_WORDS[st]: counts.get((s, st), 0) for st in STATUS_WORDS})
        for s in sources
    ]
    ages = f.review_age["waiting_nights"]
    buckets = [
        (label, int(((ages >= lo) & (ages <= (hi if hi is not None else 10**6))).sum()))
        for lo, hi, label in REVIEW_AGES
    ]
    weights = [(r["comparison"], r["level"], r["weight"]) for r in f.weights.to_dicts()]
    moved = f.weights.filter(
        pl.col("previous").is_not_null() & ((pl.col("weight") - pl.col("previous")).abs() >= 0.5)
    ).to_dicts()
    return {
        "table": [
            {
                "source": s,
                "word": SOURCE_WORDS.get(s, s),
                **{st: counts.get((s, st), 0) for st in STATUS_WORDS},
            }
            for s in sources
        ],
        "chart_links": Markup(
            charts.stacked_bars(
                "links_by_source",
                "记录匹配结果,按来源",
                rows,
                list(STATUS_WORDS.values()),
                dict(zip(STATUS_WORDS.values(), (charts.POSITIVE, "#E69F00", "#9e9e9e"), strict=True)),
            )
        )
        if rows
        else None,
        "review": {
            "size": f.review_age.height,
            "oldest": int(ages.max()) if ages.len() else 0,
            "buckets": buckets,
        },
        "chart_weights": Markup(
            charts.diverging_bars("match_weights", "模型各比较层级的匹配权重 (log2 m/u)", weights)
        )
        if weights
        else None,
        "moved": moved,
        "has_previous": f.weights["previous"].is_not_null().any() if f.weights.height else False,
    }


def _run(f: NightFacts) -> dict[str, Any]:
    seconds: dict[str, float] = f.run.get("seconds", {})
    peaks: dict[str, float] = f.run.get("peak_mib", {})
    steps = list(dict.fromkeys([*seconds, *peaks]))
    rows = [{"step": s, "seconds": seconds.get(s), "peak_mib": peaks.get(s)} for s in steps]
    return {
        "steps": rows,
        "chart_seconds": Markup(
            charts.stacked_bars(
                "step_seconds", "各步骤用时(秒)", [(s, {"秒": round(seconds[s], 2)}) for s in seconds], ["秒"]
            )
        )
        if seconds
        else None,
    }
