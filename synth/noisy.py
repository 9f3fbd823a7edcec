"""Turn true department records into what departments deliver: identity defects,
duplicate and corrected re-deliveries, misdated and late records.

Every defect applied is logged with the record it hit, so the tests can check the
rates and the ground truth can say what went wrong with each record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from synth import noise
from synth.deliver import Delivered
from synth.noise import NoiseProfile
from synth.world import World


@dataclass(frozen=True)
class Fields:
    """Where a source keeps the identity, and how it is delivered."""

    source: str
    id_field: str
    name_field: str
    per_identity: bool  # the department's system holds one (possibly wrong) ID per person
    gbk: bool = False
    file_delivered: bool = True


def identity_defects(
    true_id: str,
    true_name: str,
    born: Any,
    fields: Fields,
    profile: NoiseProfile,
    rng: np.random.Generator,
    exposure: Counter[str],
    applied_count: Counter[str],
) -> tuple[str, str, list[tuple[str, str]]]:
    """(delivered ID, delivered name, [(field, defect)]) for one record or person.

    ``exposure`` counts the defects this unit could have had, ``applied_count`` those
    it got: their ratio is the realised rate the tests compare with the profile.
    """
    applied: list[tuple[str, str]] = []
    allowed = tuple(
        k
        for k in noise.ID_DEFECTS
        if fields.file_delivered or k not in ("apostrophe", "empty", "excel_float", "disability_cert")
    )
    if born.year >= 2000:
        allowed = tuple(k for k in allowed if k != "legacy15")
    if true_id.endswith("X"):  # "…X" is text to Excel: it never takes it for a number
        allowed = tuple(k for k in allowed if k != "excel_float")
    exposure.update(allowed)
    kind = noise.draw(rng, profile.id, allowed)
    delivered_id = true_id if kind is None else noise.mangle_id(true_id, kind, rng)
    if kind:
        applied.append((fields.id_field, kind))
    if delivered_id.endswith("X"):
        exposure["lower_x"] += 1
        if rng.random() < profile.rate("lower_x"):
            delivered_id = delivered_id[:-1] + "x"
            applied.append((fields.id_field, "lower_x"))

    name = true_name
    if "·" in name:
        exposure["dot_variant"] += 1
        if rng.random() < profile.rate("dot_variant"):
            name = noise.vary_dot(name, rng, fields.gbk)
            applied.append((fields.name_field, "dot_variant"))
    else:
        possible = tuple(k for k in noise.NAME_DEFECTS if noise.name_defect_applies(name, k))
        exposure.update(possible)
        kind = noise.draw(rng, profile.name_defects, noise.NAME_DEFECTS)
        if kind in possible:
            name = noise.mangle_name(name, kind, rng)
            applied.append((fields.name_field, kind))
    applied_count.update(d for _, d in applied)
    return delivered_id, name, applied


def apply_identity_noise(
    records: pl.DataFrame,
    fields: Fields,
    profile: NoiseProfile,
    rng: np.random.Generator,
    exposure: Counter[str],
    applied_count: Counter[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Delivered ID and name columns, and the log (uid, field, defect) of what was applied."""
    unit = "_true_id" if fields.per_identity else "_uid"
    columns = list(dict.fromkeys((unit, "_true_id", "_true_name", "_born")))
    units = records.unique(unit, keep="first", maintain_order=True).select(columns)
    ids, nms, log_unit, log_field, log_defect = [], [], [], [], []
    for row in units.iter_rows(named=True):
        key, true_id, true_name, born = row[unit], row["_true_id"], row["_true_name"], row["_born"]
        delivered_id, name, applied = identity_defects(
            true_id, true_name, born, fields, profile, rng, exposure, applied_count
        )
        ids.append(delivered_id)
        nms.append(name)
        for field, defect in applied:
            log_unit.append(key)
            log_field.append(field)
            log_defect.append(defect)
    mapping = pl.DataFrame({unit: units[unit], "_d_id": ids, "_d_name": nms})
    out = (
        records.join(mapping, on=unit, how="left", maintain_order="left")
        .with_columns(pl.col("_d_id").alias(fields.id_field), pl.col("_d_name").alias(fields.name_field))
        .drop("_d_id", "_d_name")
    )
    log = pl.DataFrame(
        {unit: log_unit, "field": log_field, "defect": log_defect},
        schema={unit: records.schema[unit], "field": pl.String, "defect": pl.String},
    )
    log = (
        records.select("_uid", unit).join(log, on=unit, how="inner").select("_uid", "field", "defect")
        if unit != "_uid"
        else log
    )
    return out, log


def redeliveries(
    records: list[dict[str, Any]],
    profile: NoiseProfile,
    rng: np.random.Generator,
    protected: set[int],
    correct: dict[str, Any],
    date_field: str,
    as_of: Any,
    exposure: Counter[str],
    applied_count: Counter[str],
) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
    """Rows as delivered: some misdated after D, some delivered twice, some corrected later.

    ``protected`` records (planted shocks) keep their dates and values, so that what the
    truth says of them stays true. A correction changes only fields in ``correct``
    (field -> function of the row), never the record key.
    """
    out: list[dict[str, Any]] = []
    log: list[tuple[int, str, str]] = []
    for rec in records:
        rec = dict(rec)
        rec.setdefault("_defects", [])
        free = rec["_uid"] not in protected
        exposure["duplicate_row"] += 1
        if free:
            exposure.update(("after_run_date", "late_record", "supersede_row"))
        if free and rng.random() < profile.rate("after_run_date"):
            rec[date_field] = rec["_date"] = as_of + timedelta(days=int(rng.integers(1, 6)))
            log.append((rec["_uid"], date_field, "after_run_date"))
        rec["_late"] = free and rng.random() < profile.rate("late_record")
        if rec["_late"]:
            log.append((rec["_uid"], date_field, "late_record"))
        out.append(rec)
        if rng.random() < profile.rate("duplicate_row"):
            out.append({**rec, "_copy": "duplicate"})
            log.append((rec["_uid"], "*", "duplicate_row"))
        elif free and rng.random() < profile.rate("supersede_row"):
            fixed = {**rec, "_copy": "supersede"}
            for field, fix in correct.items():
                fixed[field] = fix(rec, rng)
            out.append(fixed)
            log.append((rec["_uid"], "*", "supersede_row"))
    applied_count.update(d for _, _, d in log)
    return out, log


def _protected(world: World) -> set[int]:
    return {uid for s in world.shocks for uid in s.uids}


def noisy_rows(
    world: World,
    records: list[dict[str, Any]],
    fields: Fields,
    date_field: str,
    correct: dict[str, Any],
    out: Delivered,
) -> list[dict[str, Any]]:
    """Re-deliveries, then identity defects per record or per person, logged into ``out``."""
    rows, log = redeliveries(
        records,
        world.noise,
        world.rng,
        _protected(world),
        correct,
        date_field,
        world.as_of,
        world.exposure,
        world.applied,
    )
    out.defects += log
    per_unit: dict[Any, tuple[str, str, list[tuple[str, str]]]] = {}
    for row in rows:
        unit = row["_true_id"] if fields.per_identity else row["_uid"]
        if unit not in per_unit:
            per_unit[unit] = identity_defects(
                row["_true_id"],
                row["_true_name"],
                row["_born"],
                fields,
                world.noise,
                world.rng,
                world.exposure,
                world.applied,
            )
        delivered_id, name, applied = per_unit[unit]
        row[fields.id_field], row[fields.name_field] = delivered_id, name
        row["_id_defects"] = [d for f, d in applied if f == fields.id_field]
        if row.get("_copy") is None:
            out.defects += [(row["_uid"], f, d) for f, d in applied]
            out.defects += [(row["_uid"], fields.name_field, d) for d in row["_defects"]]
            world.applied.update(row["_defects"])
    return rows


def reset_identity(fields: Fields):
    def reset(row: dict[str, Any]) -> None:
        row[fields.id_field], row[fields.name_field], row["_id_defects"] = (
            row["_true_id"],
            row["_true_name"],
            [],
        )

    return reset
