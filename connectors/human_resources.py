"""人社 exchange database (前置机): employment events and monthly contributions.

Read through a SQLAlchemy URL, read-only (as Arrow from the database's ADBC driver for
SQLite and PostgreSQL, through SQLAlchemy otherwise), incrementally: each night re-reads a
look-back window (16 periods of contributions, 400 days of events) behind the
watermark of what is already staged, because 补缴 rows arrive after their period.
Rows already staged come back and are counted as duplicates. A row without its date
comes back every night too (it belongs to no window, so no watermark can pass it by):
it is quarantined each night until the department dates it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa

from connectors.readers.batch import ROW, RawBatch
from connectors.spec import Column, Identity, Source
from guardline.errors import DeliveryError, Unavailable
from staging.stage import Watermark

LOOKBACK_PERIODS = 16
LOOKBACK_DAYS = 400

EMPLOYMENT = Source(
    name="human_resources",
    title="人社 就业失业登记",
    fmt="sql",
    table="rs_employment_event",
    columns=(
        Column("aac002", "id_number", kind="id"),
        Column("aac003", "name"),
        Column("aac004", "sex", allowed=("1", "2"), required=False),
        Column(
            "event_type",
            "event_type",
            not_empty=True,
            allowed=("就业登记", "失业登记", "灵活就业登记", "就业登记注销"),
        ),
        Column("event_date", "event_date", kind="date", not_empty=True),
        Column("employer_name", "employer_name", required=False),
        Column("work_area", "work_area", required=False),
    ),
    key=("id_number", "event_type", "event_date"),
    key_prefix="rs_employment_event",
    identity=Identity("id_number", "name", sex="sex"),
    event_date="event_date",
)

CONTRIBUTIONS = Source(
    name="human_resources",
    title="人社 缴费记录",
    fmt="sql",
    table="rs_contribution_month",
    columns=(
        Column("aac002", "id_number", kind="id", not_empty=True),
        Column("aac003", "name"),
        Column("period", "period", kind="period", not_empty=True),
        Column("wage_base", "wage_base", kind="money", minimum=0),
        Column("status", "status", not_empty=True, allowed=("正常缴费", "中断", "补缴")),
    ),
    key=("id_number", "period"),
    key_prefix="rs_contribution_month",
    amount=pl.col("wage_base"),
    identity=Identity("id_number", "name"),
    event_date=None,
)

TABLES = (EMPLOYMENT, CONTRIBUTIONS)


def read_only_url(url: str) -> sa.URL:
    """The URL, opened so that it cannot write: SQLite in read-only mode."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not parsed.database.startswith("file:"):
        return parsed.set(
            database=f"file:{parsed.database}", query={**parsed.query, "mode": "ro", "uri": "true"}
        )
    return parsed


def _engine(url: str) -> sa.Engine:
    parsed = read_only_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Every transaction read-only, on top of whatever options the URL carries.
        options = " ".join(filter(None, (parsed.query.get("options"), "-c default_transaction_read_only=on")))
        return sa.create_engine(
            parsed.difference_update_query(["options"]), connect_args={"options": options}
        )
    return sa.create_engine(parsed)


def period_minus(period: int, months: int) -> int:
    index = (period // 100) * 12 + period % 100 - 1 - months
    return (index // 12) * 100 + index % 12 + 1


def pull(source: Source, url: str, watermark: Watermark) -> RawBatch:
    """The rows of one table inside the look-back window behind ``watermark`` (all of
    them on the first night), as text, in the order the database gives them
    (:func:`unseen` orders the ones worth staging)."""
    table = source.table
    label = f"exchange:{table}"
    columns = ", ".join(c.header for c in source.columns)
    if table == CONTRIBUTIONS.table:
        since = None if watermark.period is None else period_minus(watermark.period, LOOKBACK_PERIODS - 1)
        where, params = ("WHERE period >= :since OR period IS NULL", {"since": since}) if since else ("", {})
    else:
        since = None if watermark.event_date is None else watermark.event_date - timedelta(days=LOOKBACK_DAYS)
        where, params = (
            ("WHERE event_date >= :since OR event_date IS NULL", {"since": since.isoformat()}) if since else ("", {})
        )
    query = f"SELECT {columns} FROM {table} {where}"
    arrow = _read_arrow(url, query, params, source)
    frame, rejected = (arrow, None) if arrow is not None else _read_portable(url, query, params, source, label)
    return RawBatch(source.stage_name, label, f"{table}:{frame.height}", 0, frame, header_row=0, rejected=rejected)


def _read_portable(
    url: str, query: str, params: dict, source: Source, label: str
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The pull through SQLAlchemy (any database), naming what failed."""
    engine = _engine(url)
    try:
        try:
            con = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise Unavailable(f"{label}: the exchange database does not answer: {_first_line(exc)}") from None
        with con:
            try:
                return _read_text(con, query, params, source)
            except sa.exc.SQLAlchemyError as exc:
                raise DeliveryError(label, f"cannot read the exchange table: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def arrow_uri(url: str) -> str | None:
    """The exchange's URL as an Arrow database driver (ADBC) takes it, read-only as
    :func:`read_only_url` opens it; None for a database no such driver here reads."""
    from urllib.parse import quote

    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database and not parsed.database.startswith("file:"):
        return f"file:{parsed.database}?mode=ro"
    if backend == "postgresql":
        options = " ".join(filter(None, (parsed.query.get("options"), "-c default_transaction_read_only=on")))
        plain = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        return f"{plain}?connect_timeout=5&options={quote(options)}"
    return None


def _read_arrow(url: str, query: str, params: dict, source: Source) -> pl.DataFrame | None:
    """The pull as Arrow straight from the database driver (ADBC: SQLite, PostgreSQL),
    no Python object per cell; None when the driver cannot give it — another database,
    a server that does not answer, a column whose values are not all text-like (a BLOB in
    a table SQLite types by value) — and the SQLAlchemy path reads it, naming what failed."""
    uri = arrow_uri(url)
    if uri is None:
        return None
    # The window's bound is ours (a period or an ISO date), written into the query: the
    # two drivers spell parameters differently.
    literal = query
    for name, value in params.items():
        literal = literal.replace(f":{name}", str(value) if isinstance(value, int) else f"'{value}'")
    try:
        if uri.startswith("file:"):
            import adbc_driver_sqlite as driver
        else:
            import adbc_driver_postgresql as driver
        frame = _query_arrow(driver.connect(uri), literal)
        # Bytes where text belongs (a BLOB): the portable path sets such rows aside with
        # their reason; so it does for a text that is not UTF-8, which SQLite's driver may
        # hand over as a string (the strict cast refuses it). A PostgreSQL numeric arrives
        # as an opaque extension over its text: the text it is.
        if any(dtype == pl.Binary for dtype in frame.dtypes):
            return None
        frame = frame.select(
            pl.col(name).ext.storage() if isinstance(dtype, pl.Extension) else pl.col(name)
            for name, dtype in frame.schema.items()
        )
        frame = frame.with_columns(pl.col(pl.String).cast(pl.Binary).cast(pl.String, strict=True))
        frame = frame.select(pl.col(c.header).cast(pl.String).alias(c.name) for c in source.columns)
    except Exception:  # any driver failure: the portable path reads it and says why
        return None
    return row_ids(frame)


def _query_arrow(database: Any, query: str) -> pl.DataFrame:
    """A query's rows through ADBC's own interface, handed to polars as an Arrow stream:
    its DB-API layer imports pyarrow.dataset and pandas (0.6 s of every night's pull)."""
    import adbc_driver_manager as adbc

    with (
        contextlib.closing(database),
        contextlib.closing(adbc.AdbcConnection(database)) as connection,
        contextlib.closing(adbc.AdbcStatement(connection)) as statement,
    ):
        statement.set_sql_query(query)
        stream, _ = statement.execute_query()
        return pl.DataFrame(stream)


def _first_line(exc: sa.exc.SQLAlchemyError) -> str:
    return str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]


def _read_text(
    con: sa.Connection, query: str, params: dict, source: Source
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The rows as text under the canonical names, each numbered by :func:`row_ids`.

    Arrow through polars when every column reads as text; a row holding what no text
    can stand for (a BLOB that is not UTF-8, in a database that types by value) is set
    aside with its reason, the others read one by one.
    """
    names = [c.name for c in source.columns]
    try:
        frame = pl.read_database(
            sa.text(query), con, execute_options={"parameters": params}, infer_schema_length=None
        )
        frame = frame.select(pl.col(c.header).cast(pl.String).alias(c.name) for c in source.columns)
        return row_ids(frame), None
    except (pl.exceptions.PolarsError, TypeError, ValueError, UnicodeDecodeError):
        pass
    rows, blobs = [], []
    for row in con.execute(sa.text(query), params):
        binary = [i for i, v in enumerate(row) if isinstance(v, bytes | bytearray | memoryview)]
        rows.append([f"<BLOB {len(bytes(v))} bytes>" if i in binary else _text(v) for i, v in enumerate(row)])
        blobs.append(source.columns[binary[0]].header if binary else None)
    frame = row_ids(
        pl.DataFrame(rows, schema=dict.fromkeys(names, pl.String), orient="row").with_columns(
            pl.Series("__blob", blobs, dtype=pl.String)
        )
    )
    bad = frame.filter(pl.col("__blob").is_not_null())
    rejected = bad.select(
        pl.col(ROW).alias("row"),
        pl.col("__blob").alias("field"),
        pl.format("{}: holds binary data (a BLOB), not text", pl.col("__blob")).alias("reason"),
        pl.struct(pl.col(c.name).alias(c.header) for c in source.columns).struct.json_encode().alias("raw"),
    )
    return frame.filter(pl.col("__blob").is_null()).drop("__blob"), rejected if rejected.height else None


def row_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Number a pull's rows by what they hold, not by where they fall in tonight's window:
    the same row pulled again (a re-run, or an undated row that comes back every night)
    keeps its number, so its quarantine entry is not made twice. Identical rows are told
    apart by their order among themselves (counted among the repeated rows only: a window
    over every row of a pull cost 1.5 s for 1.1M contribution months, nearly all unique)."""
    digest = frame.select(pl.struct(pl.all()).hash(seed=20261201) // 2).to_series().cast(pl.Int64)
    number = digest // 1000 * 1000
    repeated = digest.is_duplicated()
    if repeated.any():
        twins = pl.DataFrame({"digest": digest}).with_row_index("at").filter(repeated)
        nth = twins.select("at", pl.int_range(pl.len(), dtype=pl.Int64).over("digest").alias("nth"))
        number = number + pl.zeros(len(digest), pl.Int64, eager=True).scatter(nth["at"], nth["nth"])
    return frame.select(number.alias(ROW), pl.all())


def unseen(raw: RawBatch, staged: pl.DataFrame | None, source: Source) -> RawBatch:
    """The pull without the rows the stage already holds as their record's latest version,
    which are counted (``known``) as the duplicates they are: the look-back window brings
    back months of unchanged rows every night, and only what is new or changed behind the
    watermark is worth typing, validating and merging. A row is known by its number, which
    :func:`row_ids` draws from what it holds."""
    fresh = raw.frame
    if staged is not None and staged.height and fresh.height:
        held = staged.filter(pl.col("file") == raw.file).select(pl.col("row").alias(ROW))
        fresh = fresh.join(held, on=ROW, how="anti")
    # By the record key, rows of one key in the order the database gave them (the later
    # supersedes): ordered here, not by the query, the look-back window's million rows
    # are not sorted every night to keep the few new ones (SQLite: 0.8 -> 0.4 s).
    key = [c for c in source.key if c in fresh.columns]
    raw.known, raw.frame = raw.frame.height - fresh.height, fresh.sort(key, maintain_order=True)
    return raw


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def advance(watermark: Watermark, staged: pl.DataFrame, source: Source) -> Watermark:
    """The watermark after staging ``staged`` rows of ``source``."""
    if staged.height == 0:
        return watermark
    if source.table == CONTRIBUTIONS.table:
        top = staged["period"].max()
        return Watermark(max(p for p in (watermark.period, top) if p is not None), watermark.event_date)
    top = staged["event_date"].max()
    return Watermark(watermark.period, max(d for d in (watermark.event_date, top) if d is not None))
