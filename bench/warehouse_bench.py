"""Bulk loading into the PostgreSQL warehouse: rows per second.

Usage: python bench/warehouse_bench.py [rows] [postgresql+psycopg URL]
       (default 1,000,000 rows into postgresql+psycopg://postgres@127.0.0.1:5432/test)

Loads a record_links-shaped frame with the same bulk path the night uses (binary COPY
encoded from Arrow, inside one transaction) into a scratch schema. The named peers, on
the same rows: psycopg's text COPY fed one ``write_row`` per row (the path before), and
SQLAlchemy's executemany INSERT of a 50,000-row slice, the row-by-row way.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl
import sqlalchemy as sa

from warehouse.db import engine, upgrade
from warehouse.load import bulk_insert
from warehouse.schema import record_links

SCHEMA = "guardline_bench"


def frame(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame(
        {
            "source": rng.choice(["health_insurance", "human_resources", "civil_affairs"], n),
            "source_record_id": [f"R{i:012d}" for i in range(n)],
            "person_id": [f"0433124{i % 3_000_000:09d}" for i in range(n)],
            "household_id": [f"0433124{i % 900_000:07d}" for i in range(n)],
            "match_status": rng.choice(["matched", "review", "unmatched"], n, p=[0.9, 0.01, 0.09]),
            "match_probability": rng.random(n),
            "match_method": "exact id",
            "explanation": "证件号码 exact +18.3 · 姓名 exact +13.0 · 村 same village +7.1 → 1.0",
            "candidates": None,
        }
    )


def main(n: int, url: str) -> None:
    admin = sa.create_engine(url)
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        c.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    eng = engine(f"{url}?options=-csearch_path%3D{SCHEMA}")
    upgrade(eng)
    data = frame(n)
    started = time.perf_counter()
    with eng.begin() as conn:
        bulk_insert(conn, record_links, data)
    seconds = time.perf_counter() - started
    print(
        f"COPY: {n:,} rows in {seconds:.2f} s -> {n / seconds:,.0f} rows/s into PostgreSQL (one transaction)"
    )
    started = time.perf_counter()
    with eng.begin() as conn, conn.connection.driver_connection.cursor() as cursor:
        peer = data.with_columns(pl.col("source_record_id") + "-copy")
        with cursor.copy(f"COPY record_links ({', '.join(peer.columns)}) FROM STDIN") as copy:
            for row in peer.iter_rows():
                copy.write_row(row)
    seconds = time.perf_counter() - started
    print(
        f"peer: psycopg text COPY, write_row per row: {n:,} rows in {seconds:.2f} s -> {n / seconds:,.0f} rows/s"
    )
    part = data.head(50_000).with_columns(pl.col("source_record_id") + "-peer")
    started = time.perf_counter()
    with eng.begin() as conn:
        conn.execute(record_links.insert(), part.to_dicts())
    seconds = time.perf_counter() - started
    print(
        f"peer: SQLAlchemy executemany INSERT: {part.height:,} rows in {seconds:.2f} s -> "
        f"{part.height / seconds:,.0f} rows/s"
    )
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA {SCHEMA} CASCADE"))


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000,
        sys.argv[2] if len(sys.argv) > 2 else "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
