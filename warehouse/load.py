"""Loading a night from the stage into the warehouse: idempotent and atomic.

Everything a county's night writes goes in one transaction of its own, so a run killed
mid-load leaves the previous state intact and one county's failure leaves the others'
nights in place. Each table's rows of the county are replaced (the register and links as
a whole, flags and exit candidates for the night's date), so loading the same night
twice leaves every table identical. Rows go in bulk — DuckDB reads the Arrow table directly,
PostgreSQL takes binary COPY encoded from Arrow (pgpq) — never row by row.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from connectors.canonical import META
from connectors.sources import BY_STAGE_NAME, RECORD_STAGES
from guardline.atomic import Hook
from guardline.errors import GuardlineError
from guardline.frames import aligned
from guardline.version import code_version
from rules.catalogue import Catalogue
from rules.features import head_rows
from rules.incremental import LINKED
from staging.stage import LoadAccount, Stage
from visits.config import VisitConfig
from visits.dispositions import apply_visits
from warehouse import delta, schema
from warehouse.db import upgrade
from warehouse.privacy import (
    key_fingerprint,
    mask_id,
    mask_phone,
    pseudonym_key,
    pseudonymous_evidence,
    pseudonyms,
    record_pseudonyms,
)


@dataclass
class LoadResult:
    rows: dict[str, int] = field(default_factory=dict)  # the county's rows per table after the load
    changed: dict[str, int] = field(default_factory=dict)  # rows deleted and inserted per table tonight
    unread: list[str] = field(default_factory=list)  # state tables made of what the last load's were: not built
    seconds: float = 0.0

    def summary(self) -> dict:
        """What the step did, as JSON: the CLI, the run audit and XCom render this."""
        return {
            "rows": dict(self.rows),
            "changed": dict(self.changed),
            "unread": list(self.unread),
            "seconds": round(self.seconds, 3),
        }


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    """Append ``frame`` (columns named as the table's) in bulk, inside the open transaction."""
    frame = frame.select([c.name for c in table.columns if c.name in frame.columns])
    if frame.height == 0:
        return 0
    raw = conn.connection.driver_connection
    cols = ", ".join(frame.columns)
    if conn.dialect.name == "duckdb":
        # Arrow's string views are polars' own layout: no copy of the text on the way in
        # (the default, large strings, rewrites every string column: 3x a links frame).
        arrow = frame.to_arrow(compat_level=pl.CompatLevel.newest())
        raw.register("__incoming", arrow)
        try:
            raw.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM __incoming")
        finally:
            raw.unregister("__incoming")
    elif conn.dialect.name == "postgresql":
        # COPY cannot write a table under row-level security for a login it applies to
        # (guardline_etl): such a table is filled from a temporary copy of the rows.
        secured = conn.execute(
            sa.text("SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table.name}
        ).scalar()
        target = f"__incoming_{table.name}" if secured else table.name
        with raw.cursor() as cursor:
            if secured:
                cursor.execute(
                    f"CREATE TEMP TABLE {target} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP"
                )
            copy_binary(cursor, target, wire_frame(table, frame))
            if secured:
                cursor.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {target}")
                cursor.execute(f"DROP TABLE {target}")
    else:  # pragma: no cover - other backends take the portable path
        conn.execute(table.insert(), frame.to_dicts())
    return frame.height


# The Arrow type whose binary COPY encoding is the column's own: binary COPY does not cast
# (an int8 sent to an integer column is an error), so each value travels as its column's type.
WIRE_TYPES: dict[type, pl.DataType] = {
    sa.SmallInteger: pl.Int16(),
    sa.BigInteger: pl.Int64(),
    sa.Integer: pl.Int32(),
    sa.Double: pl.Float64(),
    sa.Float: pl.Float64(),
    sa.Boolean: pl.Boolean(),
    sa.Date: pl.Date(),
    sa.DateTime: pl.Datetime("us"),
    sa.String: pl.String(),
}


def wire_frame(table: sa.Table, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every column cast to the Arrow type of its table column's wire format."""

    def wire(column: sa.Column) -> pl.DataType:
        for kind, dtype in WIRE_TYPES.items():  # subclasses first: BigInteger is an Integer
            if isinstance(column.type, kind):
                return dtype
        raise TypeError(f"{table.name}.{column.name}: no binary COPY encoding for {column.type!r}")

    return frame.cast({c: wire(table.c[c]) for c in frame.columns})


COPY_ROWS = 65_536  # rows per Arrow batch of a binary COPY


def copy_binary(cursor: Any, target: str, frame: pl.DataFrame) -> None:
    """COPY ``frame`` into ``target`` in PostgreSQL's binary format, encoded from Arrow by
    record batch (no Python object per value). Each slice of the frame becomes Arrow on
    its own: the encoder takes large strings, not polars' string views, and converting
    the whole frame at once would hold a copy of all its text."""
    from pgpq import ArrowToPostgresBinaryEncoder

    encoder = None
    with cursor.copy(f"COPY {target} ({', '.join(frame.columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        for piece in frame.iter_slices(COPY_ROWS):
            for batch in piece.to_arrow().to_batches():
                if encoder is None:
                    encoder = ArrowToPostgresBinaryEncoder(batch.schema)
                    copy.write(encoder.write_header())
                copy.write(encoder.write_batch(batch))
        if encoder is not None:
            copy.write(encoder.finish())


def _replace(
    conn: sa.Connection, table: sa.Table, frame: pl.DataFrame, where: sa.ColumnElement | None = None
) -> int:
    conn.execute(table.delete() if where is None else table.delete().where(where))
    return bulk_insert(conn, table, frame)


PAYLOAD_HASH = "__payload_hash"


@dataclass
class StagedRecords:
    """Every department record the night sees, with a hash of its canonical values in
    place of their JSON: a night writes the payload of the records it inserts only, and
    encoding 1.7 million of them to compare them with the last load's was most of a
    nothing-new night's load."""

    rows: pl.DataFrame  # key, origin, date, amount, PAYLOAD_HASH
    values: list[pl.DataFrame] = field(default_factory=list)  # per record stage: source, source_record_id, __values

    def with_payloads(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` (some of :attr:`rows`) with their ``payload``: the values as JSON.
        Called for each slice of the rows a load writes (:data:`SLICE_ROWS`): a first night
        writes every record, and holding all their JSON at once made the load the
        night's peak."""
        if rows.height == 0:
            return rows
        keys = rows.select("source", "source_record_id")
        encoded = [
            values.join(keys, on=keys.columns, how="semi").select(
                *keys.columns, pl.col("__values").struct.json_encode().alias("payload")
            )
            for values in self.values
        ]
        return rows.join(pl.concat(encoded), on=keys.columns, how="left", maintain_order="left")


def staged_records(stage: Stage, as_of: date) -> StagedRecords:
    """Every department record the night sees: its key, origin, date, its own amount (by
    its source's declaration) and its canonical values (their JSON made on demand)."""
    frames, values = [], []
    for stage_name, records in _records(stage, as_of):
        columns = [c for c in records.columns if c not in META]
        records = records.with_columns(pl.struct(columns).alias("__values"))
        frames.append(
            records.select(
                *_RECORD_KEY,
                "file",
                pl.col("row").cast(pl.Int64),
                *_dated(stage_name),
                pl.col("__values").hash(seed=20261203).alias(PAYLOAD_HASH),
            )
        )
        values.append(records.select(*_RECORD_KEY, "__values"))
    return StagedRecords(pl.concat(frames) if frames else pl.DataFrame(), values)


_RECORD_KEY = ("source", "source_record_id")


def _records(stage: Stage, as_of: date) -> Iterator[tuple[str, pl.DataFrame]]:
    for stage_name in RECORD_STAGES:
        records = stage.records(stage_name, as_of)
        if records is not None and records.height:
            yield stage_name, records


def _dated(stage_name: str) -> list[pl.Expr]:
    """A record's date and its own amount, by its source's declaration."""
    declared = BY_STAGE_NAME[stage_name].amount
    return [pl.col("event_date"), (declared if declared is not None else pl.lit(None)).cast(pl.Float64).alias("amount")]


def dated_records(stage: Stage, as_of: date) -> pl.DataFrame | None:
    """Every department record's key, date and amount (what a link carries into the
    warehouse), without the values: for a night whose records were not loaded again."""
    frames = [records.select(*_RECORD_KEY, *_dated(name)) for name, records in _records(stage, as_of)]
    return pl.concat(frames) if frames else None


def county_code(register: pl.DataFrame, county: str) -> str | None:
    """The county's 6-digit code: the province's name for its folder when it is one, else
    the area code most of the register's ID numbers carry."""
    if len(county) == 6 and county.isdigit():
        return county
    areas = register.select(pl.col("id_number").str.strip_chars().str.slice(0, 6).alias("a")).filter(
        pl.col("a").str.contains(r"^\d{6}$")
    )
    return areas["a"].mode().sort().first() if areas.height else None


def record_run(eng: sa.Engine, as_of: date, counts: dict, started_at: datetime) -> str:
    """The audit row of one run (its own transaction: the log of runs, not part of a night's
    state, so re-running a night adds a row here and changes nothing else)."""
    run_id = f"{as_of.isoformat()}:{uuid.uuid4().hex[:12]}"
    row = pl.DataFrame(
        [
            {
                "run_id": run_id,
                "as_of_date": as_of,
                "started_at": started_at,
                "code_version": code_version(),
                "counts": json.dumps(counts, ensure_ascii=False, default=str),
            }
        ]
    )
    with eng.begin() as conn:
        bulk_insert(conn, schema.run_audit, row)
    return run_id


# What a table's rows written tonight gain before they go in: the columns too costly to
# build for every row when most are unchanged (pseudonyms: an HMAC per value; a record's
# payload: its values as JSON). The account's row hash stands in for them: the
# pseudonyms by the key's fingerprint, the payload by the hash of the values.
Complete = Callable[[pl.DataFrame], pl.DataFrame]


def _as_is(rows: pl.DataFrame) -> pl.DataFrame:
    return rows


@dataclass
class Part:
    """One table of a county's night: what builds its rows (with what completes the rows
    written, :data:`Complete`), called when the table's turn comes and let go once it is
    written (a county's records and links are the two largest, and holding every table's
    frame until the end doubled the load's memory); and, for the largest state tables, a
    digest of everything the rows are made from (``inputs``): equal to the last load's,
    the table holds these rows already and is not built at all."""

    name: str
    build: Callable[[], tuple[pl.DataFrame, Complete]]
    inputs: str | None = None


def _county_register(stage: Stage, as_of: date, county: str) -> tuple[pl.DataFrame, str]:
    """The register the night sees and the county's code; an incomplete night is refused."""
    register = stage.records("registry", as_of)
    if register is None:
        raise GuardlineError(f"no register staged by {as_of} in {stage.root}: run `guardline ingest` first")
    if any(as_of not in stage.nights(kind) for kind in ("links", "flags")):
        raise GuardlineError(
            f"the night of {as_of} is not complete in {stage.root}: run match and flag first"
        )
    code = county_code(register, county) if register.height else None
    if not code:
        raise GuardlineError(f"cannot tell the county of {stage.root}: its register holds no 6-digit area code")
    return register, code


def _night_parts(stage: Stage, as_of: date, key: bytes, register: pl.DataFrame, code: str) -> Iterator[Part]:
    """What one county's stage contributes to the warehouse for the night ``as_of``,
    table by table in the order they are written."""
    register_in = stage.records_digest("registry", as_of)
    records_in = [stage.records_digest(name, as_of) for name in RECORD_STAGES]
    made_by = (code_version(), key_fingerprint(key), code)  # what else makes the rows: the code, the key, the county

    def digest(name: str, *inputs: str | None) -> str | None:
        if any(i is None for i in inputs):
            return None
        return hashlib.sha256("|".join([name, *made_by, *inputs]).encode()).hexdigest()  # type: ignore[list-item]

    yield Part("households", functools.partial(_households, register), digest("households", register_in))
    yield Part("persons", functools.partial(_persons, register, key), digest("persons", register_in))
    del register  # held by the two builds alone, let go with them
    night: dict[str, pl.DataFrame | None] = {}  # the records' dates, from their table to the links'

    def source_records() -> tuple[pl.DataFrame, Complete]:
        records = staged_records(stage, as_of)
        night["dated"] = records.rows.select(*_RECORD_KEY, "event_date", "amount") if records.rows.height else None
        return records.rows.drop("amount", strict=False), records.with_payloads

    yield Part("source_records", source_records, digest("source_records", *records_in))

    def record_links() -> tuple[pl.DataFrame, Complete]:
        dated = night.pop("dated") if "dated" in night else dated_records(stage, as_of)
        links = stage.nightly("links", as_of)
        return _with_dates(links, dated), functools.partial(_with_record_pseudonyms, key=key)

    links_in = stage.nightly_digest("links", as_of)
    yield Part("record_links", record_links, digest("record_links", links_in, *records_in))
    night.pop("dated", None)
    visits = stage.visits(as_of)

    def flags() -> tuple[pl.DataFrame, Complete]:
        links = stage.nightly("links", as_of, LINKED)
        made = apply_visits(stage.nightly("flags", as_of), visits, Catalogue.load(), VisitConfig.load(), as_of, links)
        return made.with_columns(pseudonymous_evidence(made["evidence"], key)), _as_is

    yield Part("flags", flags)
    yield Part("exit_candidates", lambda: (_or_empty(stage.nightly("exit", as_of)), _as_is))
    yield Part("processed_files", lambda: (stage.ledger(), _as_is))
    yield Part("quarantine", lambda: (stage.quarantine(), _as_is))
    yield Part("review_decisions", lambda: (_or_empty(stage.decisions(as_of)), _as_is))
    yield Part("visits", lambda: (_or_empty(visits), _as_is))


def _with_dates(links: pl.DataFrame, dated: pl.DataFrame | None) -> pl.DataFrame:
    """The links with their record's date and amount, side by side (the links' own
    columns, their explanations and candidates among them, not copied)."""
    if dated is None:
        return links
    return links.hstack(aligned(dated, links.select(_RECORD_KEY)).get_columns())


def _households(register: pl.DataFrame) -> tuple[pl.DataFrame, Complete]:
    return head_rows(register).with_columns(mask_phone(pl.col("phone")).alias("phone_masked")), _as_is


def _persons(register: pl.DataFrame, key: bytes) -> tuple[pl.DataFrame, Complete]:
    def with_pseudonyms(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.with_columns(pseudonyms(rows["id_number"], key).alias("id_pseudonym")) if rows.height else rows

    return register.with_columns(mask_id(pl.col("id_number")).alias("id_masked")), with_pseudonyms


def _with_record_pseudonyms(rows: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return rows.with_columns(record_pseudonyms(rows["source_record_id"], key)) if rows.height else rows


def _or_empty(frame: pl.DataFrame | None) -> pl.DataFrame:
    return frame if frame is not None else pl.DataFrame()


# A record seen by several counties (a provincial 人社 exchange pulled by each) is one
# row in the warehouse: the best link wins, a match before a review before nothing, and
# between equals the smaller county code, so the outcome does not depend on which county
# loaded first. The same holds for the record's payload, a file's and a quarantined row's.
_LINK_ORDER = {"matched": 0, "review": 1, "unmatched": 2}
SHARED = ("record_links", "source_records", "processed_files", "quarantine")


def _status_rank(frame: pl.DataFrame) -> pl.Expr:
    """How good a row is for a key several counties hold (lower wins; then the county code)."""
    if "match_status" not in frame.columns:
        return pl.lit(0, pl.Int32)
    return pl.col("match_status").replace_strict(_LINK_ORDER, default=3, return_dtype=pl.Int32)


@contextlib.contextmanager
def _keys_table(conn: sa.Connection, table: sa.Table, keys: pl.DataFrame) -> Iterator[sa.Table]:
    """``keys`` (some of ``table``'s key columns) as a temporary table, for the block."""
    temp = sa.Table(
        f"__keys_{table.name}",
        sa.MetaData(),
        *(sa.Column(k, table.c[k].type) for k in keys.columns),
        prefixes=["TEMPORARY"],
    )
    temp.create(conn)
    try:
        bulk_insert(conn, temp, keys)
        yield temp
    finally:
        temp.drop(conn)


def _rows_keyed(conn: sa.Connection, table: sa.Table, keys: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``columns`` of the rows of ``table`` whose key is one of ``keys``."""
    names = list(keys.columns)
    with _keys_table(conn, table, keys.unique()) as temp:
        on = sa.and_(*(table.c[k] == temp.c[k] for k in names))
        rows = conn.execute(sa.select(*(table.c[c] for c in columns)).select_from(table.join(temp, on))).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=columns, orient="row")


def _merge_shared(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame, county: str) -> pl.DataFrame:
    """``frame`` without the rows another county holds better; the other counties' rows
    this county holds better are deleted. The county's own earlier rows are gone already."""
    keys = [c.name for c in table.primary_key.columns]
    ranked = [c for c in ("county_code", "match_status") if c in table.c]
    theirs = _rows_keyed(conn, table, frame.select(keys), [*keys, *ranked]) if frame.height else frame
    if theirs.height == 0:
        return frame
    contested = frame.select(*keys, _status_rank(frame).alias("rank")).join(
        theirs.select(
            *keys, _status_rank(theirs).alias("their_rank"), pl.col("county_code").alias("their_county")
        ),
        on=keys,
    )
    better = (pl.col("rank") < pl.col("their_rank")) | (
        (pl.col("rank") == pl.col("their_rank")) & (pl.lit(county) < pl.col("their_county"))
    )
    won = contested.filter(better)
    if won.height:
        with _keys_table(conn, table, won.select(keys)) as temp:
            conn.execute(table.delete().where(sa.tuple_(*(table.c[k] for k in keys)).in_(sa.select(*temp.c))))
        for other in won["their_county"].drop_nulls().unique():  # their account no longer holds
            _keep_fingerprint(conn, other, None)
    return frame.join(contested.filter(~better).select(keys), on=keys, how="anti")


def _registered_elsewhere(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame, county: str) -> None:
    """A register key belongs to one county: refuse one another county has loaded."""
    key = next(iter(table.primary_key.columns)).name
    if frame.height == 0:
        return
    clash = _rows_keyed(conn, table, frame.select(key), [key, "county_code"]).filter(
        pl.col("county_code") != county
    )
    if clash.height:
        first = clash.row(0)
        raise GuardlineError(
            f"{table.name}: {key} {first[0]} is in the registers of {first[1]} and {county} "
            f"({clash.height} such keys): a register key belongs to one county"
        )


KEY_SETTING = "pseudonym_key_fingerprint"
LATEST_SETTING = "latest_night"  # per county, "latest_night:<county>": whose state the state tables hold
LOADED_SETTING = "loaded"  # per county, "loaded:<county>": the fingerprint of its last load (warehouse.delta)
NIGHT_SCOPED = ("flags", "exit_candidates")


def _latest_night(conn: sa.Connection, as_of: date, county: str) -> date:
    """The county's latest night loaded before this one, now ``as_of`` if it is later (a
    warehouse loaded before counties loaded apart kept one for all)."""
    table = schema.settings
    name = f"{LATEST_SETTING}:{county}"
    kept = {
        n: v
        for n, v in conn.execute(
            sa.select(table.c.name, table.c.value).where(table.c.name.in_([name, LATEST_SETTING]))
        ).all()
    }
    found = kept.get(name) or kept.get(LATEST_SETTING)
    latest = date.fromisoformat(found) if found else None
    if latest is not None and as_of <= latest:
        return latest
    _put_setting(conn, name, as_of.isoformat())
    return as_of


def _setting(conn: sa.Connection, name: str) -> str | None:
    table = schema.settings
    return conn.execute(sa.select(table.c.value).where(table.c.name == name)).scalar()


def _put_setting(conn: sa.Connection, name: str, value: str | None) -> None:
    """Set a warehouse setting (None: remove it), stamped with when it changed."""
    table = schema.settings
    conn.execute(table.delete().where(table.c.name == name))
    if value is not None:
        conn.execute(table.insert().values(name=name, value=value, changed_at=datetime.now()))


def check_key(conn: sa.Connection, key: bytes, rekey: bool = False, write: bool = False) -> bool:
    """Refuse a pseudonym key other than the one the warehouse was built with (its
    pseudonyms would change under the analysts' feet), unless ``rekey``; with ``write``,
    keep the key's fingerprint. True when the key changes tonight."""
    fingerprint = key_fingerprint(key)
    kept = _setting(conn, KEY_SETTING)
    if kept is not None and kept != fingerprint and not rekey:
        raise GuardlineError(
            f"the pseudonym key is not the one this warehouse was built with (fingerprint {kept}, "
            f"now {fingerprint}): every pseudonym analysts know would change. Set the old key again, "
            "or re-key on purpose with --rekey"
        )
    if write and kept != fingerprint:
        _put_setting(conn, KEY_SETTING, fingerprint)
    return kept is not None and kept != fingerprint


def _rekey_earlier_flags(conn: sa.Connection, as_of: date, key: bytes) -> None:
    """The evidence of earlier nights, its records named under the new key."""
    flags = schema.flags
    rows = conn.execute(sa.select(flags).where(flags.c.as_of_date != as_of)).mappings().all()
    if not rows:
        return
    earlier = pl.DataFrame([dict(r) for r in rows], infer_schema_length=None)
    earlier = earlier.with_columns(pseudonymous_evidence(earlier["evidence"], key))
    _replace(conn, flags, earlier, flags.c.as_of_date != as_of)


def load_night(
    eng: sa.Engine,
    stage: Stage,
    as_of: date,
    county: str = "",
    demo: bool = False,
    rekey: bool = False,
    on_step: Hook | None = None,
    full: bool = False,
) -> LoadResult:
    """One county's register, links, night's flags and exit candidates, processed files,
    in one transaction of its own: its rows (``county_code``) replaced, the other
    counties' left as they are.

    The night's own tables (flags, exit candidates) are replaced for its date. The tables
    of today's state (register, records, links, files, decisions) take the night's only
    when no later night of the county has been loaded: re-running an earlier night
    reproduces its flags and leaves the state of the later night in place.

    ``county``: the province's name for the county's folder (its code, when it is one);
    empty for a stage of its own, whose code the register gives. ``rekey``: the pseudonym
    key changed on purpose; the pseudonymous evidence of earlier nights is recomputed
    under the new key in the same transaction. ``on_step`` is called with
    ``load:<table>`` before each table is written (the kill tests stop there).

    Of the state tables, only the rows that changed since the county's last load are
    written when the stage's account of that load agrees with the warehouse
    (:mod:`warehouse.delta`); ``full``, or without it, the county's rows are replaced."""
    started = time.perf_counter()
    key = pseudonym_key(demo)
    register, code = _county_register(stage, as_of, county)
    parts = _night_parts(stage, as_of, key, register, code)
    del register
    hook = on_step or (lambda _step: None)
    upgrade(eng)
    result = LoadResult()
    last = stage.load_account()
    written: dict[str, pl.DataFrame] = {}
    inputs: dict[str, str] = {}
    with eng.begin() as conn:
        if check_key(conn, key, rekey, write=True):
            _rekey_earlier_flags(conn, as_of, key)
        latest = _latest_night(conn, as_of, code)
        trusted = not full and last is not None and _fingerprint(conn, code) == last.fingerprint
        before = last if trusted else LoadAccount("", {})
        for part in parts:
            name, table = part.name, schema.metadata.tables[part.name]
            kept = before.tables.get(name)
            if name not in NIGHT_SCOPED and (latest > as_of or (part.inputs and before.inputs.get(name) == part.inputs)):
                # The state of a later night stays; or the rows are made of what the last
                # load's were: the table holds them already, and its account stands.
                if kept is not None:
                    written[name] = kept
                    if name in before.inputs:
                        inputs[name] = before.inputs[name]
                    result.rows[name], result.changed[name] = kept.height, 0
                if latest <= as_of:
                    result.unread.append(name)
                continue
            hook(f"load:{name}")
            frame, complete = part.build()
            frame = frame.with_columns(pl.lit(code).alias("county_code")) if frame.height else frame
            if name in NIGHT_SCOPED:
                night = sa.and_(_mine(table, code), table.c.as_of_date == as_of)
                deleted = conn.execute(table.delete().where(night)).rowcount or 0
                result.rows[name] = bulk_insert(conn, table, frame)
                result.changed[name] = deleted + result.rows[name]
            else:
                load = _load_state(conn, table, frame, code, kept, key, complete)
                result.rows[name], result.changed[name] = load.account.height, load.changed
                if load.account.height:
                    written[name] = load.account
                if part.inputs and load.whole:  # a row lost to another county's is tried again next night
                    inputs[name] = part.inputs
            del frame, complete, part  # let go (a records' completion holds their values) before the next is built
        account = LoadAccount(delta.fingerprint(written), written, inputs)
        _keep_fingerprint(conn, code, account.fingerprint)
    if last is None or (last.fingerprint, last.inputs) != (account.fingerprint, account.inputs):
        stage.save_load_account(account, last)  # else the account stands as it is
    result.seconds = time.perf_counter() - started
    return result


def _mine(table: sa.Table, code: str) -> sa.ColumnElement:
    """The county's rows, and rows loaded before counties loaded apart (no county)."""
    return sa.or_(table.c.county_code == code, table.c.county_code == "", table.c.county_code.is_(None))


# Rows completed (pseudonyms, payloads), merged and inserted at a time: what completing
# them adds is held for one slice, not for a county's 1.7 million records or links.
SLICE_ROWS = 250_000


@dataclass
class StateLoad:
    """What loading one state table did: its new account (the county's rows it holds),
    the rows written (deleted and inserted), and whether every row sent went in (none lost
    to another county's)."""

    account: pl.DataFrame
    changed: int
    whole: bool


def _load_state(
    conn: sa.Connection,
    table: sa.Table,
    frame: pl.DataFrame,
    code: str,
    before: pl.DataFrame | None,
    key: bytes,
    complete: Complete = _as_is,
) -> StateLoad:
    """One state table of the county: with the last load's account (``before``), only the
    rows gone or changed are deleted and the new or changed inserted; without it, the
    county's rows are replaced."""
    keys = [c.name for c in table.primary_key.columns]
    salted = frame.with_columns(pl.lit(key_fingerprint(key)).alias("__key"))
    now = delta.row_hashes(salted, keys) if frame.height else pl.DataFrame()
    deleted = 0
    if before is None or now.height == 0 or before.height == 0:
        deleted = conn.execute(table.delete().where(_mine(table, code))).rowcount or 0
        send = frame
    else:
        gone = delta.stale(before, now, keys)
        if gone.height:
            with _keys_table(conn, table, gone) as temp:
                on = sa.tuple_(*(table.c[k] for k in keys)).in_(sa.select(*temp.c))
                deleted = conn.execute(table.delete().where(sa.and_(_mine(table, code), on))).rowcount or 0
        send = frame.join(delta.fresh(before, now, keys), on=keys, how="semi")
    if table.name in ("households", "persons"):
        _registered_elsewhere(conn, table, send, code)
    inserted, lost = 0, []
    for start in range(0, send.height, SLICE_ROWS):
        part = complete(send.slice(start, SLICE_ROWS))
        kept = _merge_shared(conn, table, part, code) if table.name in SHARED else part
        inserted += bulk_insert(conn, table, kept)
        # Rows that lost to another county's are not the county's: tried again next night.
        lost.append(part.join(kept.select(keys), on=keys, how="anti").select(keys))
        del part, kept
    refused = pl.concat(lost) if lost else pl.DataFrame()
    account = now.join(refused, on=keys, how="anti") if refused.height else now
    return StateLoad(account, deleted + inserted, whole=refused.height == 0)


def _fingerprint(conn: sa.Connection, code: str) -> str | None:
    return _setting(conn, f"{LOADED_SETTING}:{code}")


def _keep_fingerprint(conn: sa.Connection, code: str, fingerprint: str | None) -> None:
    """The fingerprint of the county's load, or none (``fingerprint`` None): its next load
    replaces its rows as a whole."""
    if _fingerprint(conn, code) != fingerprint:  # the same rows loaded again: nothing changes
        _put_setting(conn, f"{LOADED_SETTING}:{code}", fingerprint)
