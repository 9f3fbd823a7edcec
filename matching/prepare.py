"""The register and the department records, prepared for the Chinese settings:
normalised identifiers, the blocking keys, places found in free-text addresses."""

from __future__ import annotations

from datetime import date

import polars as pl

from connectors.readers.batch import ID_CELL
from connectors.sources import BY_STAGE_NAME, RECORD_STAGES
from connectors.spec import Source
from matching.normalise import normalise_names, phone, place_key, places_in, with_id_columns
from staging.stage import Stage

RECORD_KEYS = ("source", "source_record_id")
# A record that names a household head may name the spouse instead (应急's teams do): both
# are "the head" to the comparison, every other member is not.
HEAD, MEMBER = "户主或配偶", "其他成员"


def _keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Blocking and comparison columns derived from ``id18``/``id_prefix``/names."""
    id_or_prefix = pl.coalesce(pl.col("id18"), pl.col("id_prefix"))
    birth = id_or_prefix.str.slice(6, 8)
    return frame.with_columns(
        pl.when(birth.str.to_date("%Y%m%d", strict=False).is_not_null()).then(birth).alias("birth_text"),
        pl.concat_str(pl.col("id18").str.slice(0, 6), pl.col("id18").str.slice(14, 3)).alias("id_area_seq"),
        # The area code and the birth year's first three digits (its decade), where an ID
        # or what Excel kept of it has them.
        pl.when(id_or_prefix.str.len_chars() >= 9).then(id_or_prefix.str.slice(0, 9)).alias("id_prefix9"),
        # The area code and the first digit of the birth year: all that an Excel float in a
        # CSV (4.331242E+17) keeps of an ID at its shortest.
        id_or_prefix.str.slice(0, 7).alias("id_prefix7"),
        # The given name's first and last characters: one of them survives a character
        # lost (李俊志 typed 李俊 keeps 俊 first, 石娟红 typed 石红 keeps 红 last).
        pl.col("name_key").str.slice(1, 1).alias("given_first"),
        pl.col("name_key").str.slice(-1, 1).alias("given_last"),
        # Digits 8-17 (the birth date after its century digit, and the sequence): what a
        # transposition across the area code's end and the birth year (433124|1980 typed
        # 433121|4980) leaves intact, when the area, the birth date and the prefix are gone.
        pl.col("id18").str.slice(7, 10).alias("id_tail"),
    )


def id_cell(records: pl.DataFrame) -> pl.Expr:
    """What cell the ID was in (the reader's account), unknown for records staged before
    it was kept."""
    return pl.col(ID_CELL) if ID_CELL in records.columns else pl.lit(None, pl.Boolean).alias(ID_CELL)


def register_frame(persons: pl.DataFrame) -> pl.DataFrame:
    """Staged register rows -> the right side of matching."""
    frame = persons.select(
        "person_id",
        "household_id",
        "id_number",
        "name",
        "sex",
        "township",
        "village",
        "phone",
        "relation",
        pl.col("household_size").cast(pl.Int64, strict=False),
        id_cell(persons),
    )
    frame = with_id_columns(frame, "id_number", ID_CELL)
    frame = normalise_names(frame, "name")
    frame = frame.with_columns(
        place_key(pl.col("township")).alias("township_key"),
        place_key(pl.col("village")).alias("village_key"),
        phone(pl.col("phone")).alias("phone"),
        pl.coalesce(pl.col("sex"), pl.col("id_sex")).alias("sex"),
        pl.when(pl.col("relation").is_in(["户主", "配偶"]))
        .then(pl.lit(HEAD))
        .otherwise(pl.lit(MEMBER))
        .alias("head_role"),
    ).with_columns(
        # Where a person is treated, if near home: their own township and village.
        pl.col("township_key").alias("care_township_key"),
        pl.col("village_key").alias("care_village_key"),
    )
    return _keys(frame)


def record_versions(stage: Stage, as_of: date) -> pl.DataFrame:
    """``source``, ``source_record_id`` and ``version`` of every record the night sees."""
    frames = []
    for stage_name in RECORD_STAGES:
        versions = stage.latest_versions(stage_name, as_of)
        if versions is not None and versions.height:
            frames.append(versions.select(pl.lit(BY_STAGE_NAME[stage_name].name).alias("source"), pl.all()))
    schema = {"source": pl.String, "source_record_id": pl.String, "version": pl.Int64}
    return pl.concat(frames, how="vertical_relaxed").cast(schema) if frames else pl.DataFrame(schema=schema)


def _source_records(
    source: Source, records: pl.DataFrame, townships: list[str], villages: list[str]
) -> pl.DataFrame:
    ident = source.identity
    cols = {
        "source": pl.lit(source.name),
        "source_record_id": pl.col("source_record_id"),
        "id_raw": pl.col(ident.id_number),
        "name_raw": pl.col(ident.name),
        "phone_raw": pl.col(ident.phone) if ident.phone else pl.lit(None, pl.String),
        ID_CELL: id_cell(records),
        "sex_raw": (
            pl.col(ident.sex)
            .replace({"1": "男", "2": "女"})
            .replace_strict({"男": "男", "女": "女"}, default=None)
            if ident.sex
            else pl.lit(None, pl.String)
        ),
        "household_size": (
            pl.col(ident.household_size).cast(pl.Int64, strict=False)
            if ident.household_size
            else pl.lit(None, pl.Int64)
        ),
        "head_role": pl.lit(HEAD if ident.names_head else None, pl.String),
    }
    if ident.place == ("township", "village"):
        cols["township_key"] = place_key(pl.col("township"))
        cols["village_key"] = place_key(pl.col("village"))
    elif ident.place:
        text = pl.col(ident.place[0]).fill_null("")
        cols["township_key"] = places_in(text, townships).list.first()
        cols["village_key"] = places_in(text, villages).list.first()
    else:
        cols["township_key"] = pl.lit(None, pl.String)
        cols["village_key"] = pl.lit(None, pl.String)
    if ident.care_place:
        text = pl.col(ident.care_place).fill_null("")
        cols["care_township_key"] = places_in(text, townships).list.first()
        cols["care_village_key"] = places_in(text, villages).list.first()
    else:
        cols["care_township_key"] = pl.lit(None, pl.String)
        cols["care_village_key"] = pl.lit(None, pl.String)
    return records.select(**cols)


def records_frame(
    stage: Stage, register: pl.DataFrame, as_of: date, only: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Every department record the night ``as_of`` sees (or those of ``only``: ``source``,
    ``source_record_id``) -> the left side of matching."""
    townships = register["township_key"].drop_nulls().unique().to_list()
    villages = register["village_key"].drop_nulls().unique().to_list()
    frames = []
    for stage_name in RECORD_STAGES:
        records = stage.records(stage_name, as_of)
        source = BY_STAGE_NAME[stage_name]
        if records is not None and only is not None:
            wanted = only.filter(pl.col("source") == source.name).select("source_record_id")
            records = records.join(wanted, on="source_record_id", how="semi")
        if records is not None and records.height:
            frames.append(_source_records(source, records, townships, villages))
    if not frames:
        return pl.DataFrame()
    frame = pl.concat(frames, how="vertical_relaxed")
    frame = with_id_columns(frame, "id_raw", ID_CELL)
    frame = normalise_names(frame, "name_raw")
    frame = frame.with_columns(
        phone(pl.col("phone_raw")).alias("phone"),
        pl.col("sex_raw").alias("sex"),  # as delivered only: the ID's own digits are the ID's evidence
    )
    return _keys(frame)
