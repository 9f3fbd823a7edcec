"""The ground truth of one generation, written into ``out/truth``.

links.csv, defects.csv, shocks.csv and manifest.json say what was delivered and what
was planted; flags.csv says which flags the rules raise on the true links.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from synth.deliver import Delivered
from synth.world import World

if TYPE_CHECKING:
    from synth.generate import Summary


def write_truth(
    world: World,
    delivered: list[Delivered],
    person_of: dict[int, str | None],
    folder: Path,
    summary: Summary,
    register_file: str,
    seed: int,
    noise: str,
) -> None:
    """links, shocks, defects and a manifest of every delivered file."""
    folder.mkdir(parents=True, exist_ok=True)
    links, defects, sources = [], [], []
    files: dict[str, int] = {}
    key_of_uid: dict[int, str] = {}
    for d in delivered:
        seen: set[str] = set()
        copies = {"duplicate": 0, "supersede": 0}
        for uid, key, file, copy in zip(d.uids, d.keys, d.files, d.copies, strict=True):
            files[file] = files.get(file, 0) + 1
            key_of_uid.setdefault(uid, key)
            if copy:
                copies[copy] += 1
            if key not in seen:
                seen.add(key)
                links.append((d.source, key, person_of[uid]))
        for uid, field_name, defect in d.defects:
            defects.append((d.source, key_of_uid[uid], field_name, defect))
        summary.rows[d.source] = len(d.uids)
        summary.files[d.source] = len(set(d.files))
        sources.append(
            {
                "source": d.source,
                "rows": len(d.uids),
                "records": len(seen),
                "duplicate_rows": copies["duplicate"],
                "superseded_rows": copies["supersede"],
            }
        )
    pl.DataFrame(links, schema=["source", "source_record_id", "person_id"], orient="row").write_csv(
        folder / "links.csv"
    )
    pl.DataFrame(defects, schema=["source", "source_record_id", "field", "defect"], orient="row").write_csv(
        folder / "defects.csv"
    )
    shocks = [
        (
            i + 1,
            s.household_id,
            s.shock,
            s.rule_id,
            s.expected,
            s.variant,
            s.figure,
            s.threshold,
            ";".join(key_of_uid[u] for u in s.uids),
        )
        for i, s in enumerate(world.shocks)
    ]
    pl.DataFrame(
        shocks,
        schema=[
            "shock_id",
            "household_id",
            "shock",
            "rule_id",
            "expected",
            "variant",
            "figure",
            "threshold",
            "source_record_ids",
        ],
        orient="row",
    ).write_csv(folder / "shocks.csv")
    for s in world.shocks:
        summary.shocks[f"{s.rule_id}:{s.expected}"] = summary.shocks.get(f"{s.rule_id}:{s.expected}", 0) + 1
    manifest = {
        "seed": seed,
        "county": world.county.code,
        "households": summary.households,
        "persons": summary.persons,
        "as_of": summary.as_of.isoformat(),
        "noise": noise,
        "register_file": register_file,
        "monitoring_line": world.line,
        "sources": sorted(sources, key=lambda e: e["source"]),
        "defects": {
            k: {"exposure": world.exposure[k], "applied": world.applied[k]} for k in sorted(world.exposure)
        },
        "files": [{"file": k, "rows": v} for k, v in sorted(files.items())],
    }
    (folder / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def true_links(truth: Path, register: pl.DataFrame) -> pl.DataFrame:
    """truth/links.csv as the rules read links: each record with its true person's
    household, matched, or unmatched where it names nobody of the register."""
    people = register.select("person_id", "household_id")
    return (
        pl.read_csv(truth / "links.csv", infer_schema=False)
        .join(people, on="person_id", how="left")
        .with_columns(
            pl.when(pl.col("person_id").is_not_null())
            .then(pl.lit("matched"))
            .otherwise(pl.lit("unmatched"))
            .alias("match_status")
        )
    )


def write_truth_flags(inbox: Path, truth: Path, as_of: date) -> None:
    """truth/flags.csv: the flags the rules raise on the true links, computed by the rules'
    second, independent implementation (synth/truth_rules.py), not by the engine."""
    from connectors.ingest import read_inbox
    from rules.catalogue import Catalogue
    from synth.truth_rules import flags as true_flags

    records = read_inbox(inbox, as_of)
    links = true_links(truth, records["registry"])
    counties = sorted(set(records["registry"]["county"].drop_nulls()))
    parameters = {
        row.pop("county"): row for row in Catalogue.load().parameters_for(counties, as_of.year).to_dicts()
    }
    fired = true_flags(records, links, as_of, parameters)
    pl.DataFrame(fired, schema=["household_id", "rule_id"], orient="row").sort(
        "household_id", "rule_id"
    ).write_csv(truth / "flags.csv")
