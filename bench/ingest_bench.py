"""Read + validate throughput of the 医保 connector on one large GBK file.

Usage: python bench/ingest_bench.py [rows]        (default 1,000,000)

Writes ``bench/out/yb_<rows>.csv`` once (GBK, the contract's columns, realistic
mess: five date forms, amounts with thousands separators, apostrophes and spaces in
IDs, 冲销 rows), then, in a fresh process, times the three steps Guardline runs on
every delivered file — read (decode + split), canonicalise (types, keys, row
problems), validate (the Great Expectations suite) — and prints rows/s and peak RSS.
The peer is pandas.read_csv(encoding="gbk"), the usual way to load such a file:
it only reads, with no types, keys or checks.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

OUT = Path(__file__).with_name("out")
AS_OF = date(2026, 11, 27)
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])


def make_file(rows: int) -> Path:
    """A GBK settlement file of ``rows`` rows, vectorised (numpy + polars)."""
    path = OUT / f"yb_{rows}.csv"
    if path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    birth = rng.integers(0, 365 * 80, rows)
    born = (np.datetime64("1940-01-01") + birth.astype("timedelta64[D]")).astype(str)
    seq = rng.integers(0, 1000, rows)
    first17 = np.char.add(
        np.char.add("433124", np.char.replace(born, "-", "")), np.char.zfill(seq.astype(str), 3)
    )
    digits = np.array([list(s) for s in first17], dtype=np.int64)
    check = np.array(list("10X98765432"))[(digits * WEIGHTS).sum(axis=1) % 11]
    ids = np.char.add(first17, check)
    mess = rng.random(rows)
    ids = np.where(mess < 0.02, np.char.add("'", ids), np.where(mess < 0.03, np.char.add(" ", ids), ids))
    settled = np.datetime64(AS_OF.isoformat()) - rng.integers(0, 400, rows).astype("timedelta64[D]")
    form = rng.random(rows)
    dates = pl.Series(settled.astype(str)).str.to_date()
    text = pl.select(
        pl.when(pl.lit(form) < 0.05)
        .then(dates.dt.strftime("%Y/%-m/%-d"))
        .when(pl.lit(form) < 0.08)
        .then(dates.dt.strftime("%Y年%-m月%-d日"))
        .when(pl.lit(form) < 0.10)
        .then(dates.dt.strftime("%Y%m%d"))
        .otherwise(dates.dt.strftime("%Y-%m-%d"))
        .alias("d")
    )["d"]
    burden = np.round(rng.lognormal(5, 1.2, rows), 2)
    total = np.round(burden / 0.4, 2)
    kind = np.where(rng.random(rows) < 0.02, "冲销", "正常")
    sign = np.where(kind == "冲销", -1, 1)
    names = np.array(
        ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨勇", "赵敏", "黄强", "周杰", "吴霞", "买买提·艾力"]
    )
    frame = pl.DataFrame(
        {
            "结算流水号": [f"JS{i:012d}" for i in range(rows)],
            "结算类型": kind,
            "原结算流水号": pl.Series(
                np.where(kind == "冲销", [f"JS{max(i - 1, 0):012d}" for i in range(rows)], "")
            ).replace("", None),
            "姓名": names[rng.integers(0, len(names), rows)],
            "证件类型": "居民身份证",
            "证件号码": ids,
            "参保地区划": "433124",
            "就诊类别": np.where(burden > 500, "住院", "普通门诊"),
            "定点医药机构名称": "花垣县人民医院",
            "入院日期": None,
            "出院日期": None,
            "结算日期": text,
            "医疗费总额": sign * total,
            "统筹基金支付": np.round(sign * (total - burden), 2),
            "大病保险支付": 0.0,
            "医疗救助支付": 0.0,
            "个人自付": np.round(sign * burden * 0.6, 2),
            "个人自费": np.round(sign * burden * 0.4, 2),
        }
    ).with_columns(
        pl.when(pl.col("医疗费总额").abs() >= 1000)
        .then(pl.col("医疗费总额").map_batches(lambda s: pl.Series([f"{v:,.2f}" for v in s])))
        .otherwise(pl.col("医疗费总额").cast(pl.String))
        .alias("医疗费总额")
    )
    path.write_bytes(frame.write_csv(line_terminator="\r\n").encode("gbk"))
    return path


def measure(path: Path) -> None:
    from connectors import health_insurance, readers
    from connectors.canonical import canonicalize
    from connectors.ingest import compared_values

    source = health_insurance.SOURCE
    started = time.perf_counter()
    from connectors.validation import Validator

    validator = Validator(OUT / "reports")
    validator.context  # noqa: B018 - the context opened here: its one-off cost is counted apart
    setup = time.perf_counter() - started
    t0 = time.perf_counter()
    batch = readers.read_file(source, path, path.name)
    t1 = time.perf_counter()
    canonical = canonicalize(source, batch)
    t2 = time.perf_counter()
    verdict = validator.validate(
        source, canonical.frame, AS_OF, path.name, compared_values(source, canonical.frame.columns)
    )
    t3 = time.perf_counter()
    rows = batch.frame.height
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = t3 - t0
    print(f"rows={rows:,} file={path.stat().st_size / 2**20:,.0f} MiB (GBK)")
    print(f"read      {t1 - t0:6.2f} s")
    print(f"canonical {t2 - t1:6.2f} s   ({canonical.problems.height:,} rows with problems)")
    print(
        f"GX        {t3 - t2:6.2f} s   ({100 * (t3 - t2) / total:.0f}% of the total; suite passed={verdict.success})"
    )
    print(
        f"total     {total:6.2f} s   -> {rows / total:,.0f} rows/s read+validate "
        f"(without GX: {rows / (t2 - t0):,.0f} rows/s)   peak RSS {peak:,.0f} MiB"
    )
    print(f"one-off   {setup:6.2f} s   Great Expectations import and context")


def peer(path: Path) -> None:
    import pandas as pd

    t0 = time.perf_counter()
    frame = pd.read_csv(path, encoding="gbk", dtype=str, keep_default_na=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peer: pandas.read_csv(encoding='gbk', dtype=str), read only: {seconds:.2f} s -> "
        f"{len(frame) / seconds:,.0f} rows/s, peak RSS {peak:,.0f} MiB"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("--measure", "--peer"):
        (measure if sys.argv[1] == "--measure" else peer)(Path(sys.argv[2]))
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
        file = make_file(n)
        for step in ("--measure", "--peer"):  # fresh processes: peak memory is the step's own
            subprocess.run([sys.executable, __file__, step, str(file)], check=True)
