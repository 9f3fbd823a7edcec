"""A county's nights end to end: the first, one with nothing new, one with a day's deliveries.

Usage: python bench/night_bench.py [households]        (default 100,000)

Generates the county once (``bench/out/county_<N>/``, several minutes at 100,000
households), then runs ``guardline run`` on a copy of its inbox, each night in a fresh
process on the embedded warehouse, and prints wall time and peak memory (the process's
maximum resident set, from the kernel: the largest of its steps' peaks) of:

1. the first night (every record new);
2. the next night with nothing new delivered (its windows still move);
3. the night after, with one day's deliveries: a thirtieth of the latest month's file of
   each department again as new records, and a thirtieth of the 人社 rows new or changed.

The peer is the same night run with ``--full`` (every record scored, the county's
warehouse rows replaced: what every night cost before nights were incremental), on a
copy of the stage and warehouse as they stood before it. The issue's targets are printed
beside the figures: the first night within 30 s and 2 GiB; a nothing-new night within
10% of the first; a day's deliveries within 20%.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

OUT = Path(__file__).with_name("out")
FIRST = date(2026, 11, 27)
KEY = "bench-key-0123456789abcdef0123456789"


def county(households: int) -> Path:
    """The generated county's folder (made once)."""
    folder = OUT / f"county_{households}"
    if not (folder / "inbox").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "generate", "--out", str(folder), "--households", str(households),
             "--as-of", FIRST.isoformat()],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder


def night(home: Path, as_of: date, full: bool = False) -> tuple[float, float]:
    """One ``guardline run`` in a fresh process: wall seconds and peak MiB."""
    args = [sys.executable, "-m", "pipeline.cli", "run", "--inbox", str(home / "inbox"), "--as-of", as_of.isoformat()]
    env = {**os.environ, "GUARDLINE_PSEUDONYM_KEY": KEY}
    started = time.perf_counter()
    child = subprocess.Popen([*args, *(["--full"] if full else [])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"guardline run --as-of {as_of} ended {code}: {child.stderr.read().decode()[-2000:]}")
    # The night resets the kernel's high-water mark at each step (to measure each step's
    # own peak), and that mark is what the child's ru_maxrss reports at exit: the last
    # step's peak, not the night's. The night's is the largest of its steps' and that.
    steps_mib = _audit(home, as_of)["peak_mib"].values()
    return seconds, max(usage.ru_maxrss / 1024, *steps_mib)


def _csv_day(month: Path, as_of: date, key: str, encoding: str) -> int:
    """A thirtieth of a CSV month file's rows as new records (their key marked) in a file of the day."""
    table = list(csv.reader(io.StringIO(month.read_bytes().decode(encoding))))
    header, rows = table[0], table[1:]
    column = header.index(key)
    day = [[*r[:column], f"{r[column]}D", *r[column + 1 :]] for r in rows[: max(len(rows) // 30, 1)]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *day])
    (month.parent / f"{month.stem}_day{as_of:%d}{month.suffix}").write_bytes(out.getvalue().encode(encoding))
    return len(day)


def _xlsx_day(month: Path, as_of: date, column: str) -> int:
    """A thirtieth of a workbook's rows, dated the day (new records), in a workbook of the day."""
    import openpyxl

    book = openpyxl.load_workbook(month)
    sheet = book.worksheets[0]
    header = next(r for r in sheet.iter_rows(min_row=1, max_row=10) if any(c.value == column for c in r))
    at = next(c.column for c in header if c.value == column)
    first = header[0].row + 1
    keep = max((sheet.max_row - header[0].row) // 30, 1)
    sheet.delete_rows(first + keep, sheet.max_row)
    for row in range(first, first + keep):
        sheet.cell(row, at).value = as_of.isoformat()
    book.save(month.parent / f"{month.stem}_day{as_of:%d}{month.suffix}")
    return keep


def _audit(home: Path, as_of: date) -> dict:
    """The night's run audit in the stage."""
    import json

    return json.loads((home / "stage" / "runs" / f"{as_of.isoformat()}.json").read_text("utf-8"))


def steps(home: Path, as_of: date) -> str:
    """The night's seconds and peak memory per step, from its run audit in the stage."""
    run = _audit(home, as_of)
    night = next(iter(run["counties"].values()), {})
    scored = f"; {night['scored']:,} records scored, {night['carried']:,} links carried" if "scored" in night else ""
    if "features_computed" in night:
        scored += f", {night['features_computed']:,} households' features computed"
    return ", ".join(
        f"{step} {s:.1f} s {run['peak_mib'].get(step, 0):,.0f} MiB" for step, s in run["seconds"].items()
    ) + scored


def one_days_deliveries(inbox: Path, as_of: date) -> int:
    """About a thirtieth of a month: of the latest 医保 and 民政 month files again, as new
    records in files of the day, and of the 人社 rows new (employment events of the day)
    or changed (wage bases corrected). The rows delivered."""
    delivered = _csv_day(sorted((inbox / "health_insurance").glob("*.csv"))[-1], as_of, "结算流水号", "gb18030")
    delivered += _xlsx_day(sorted((inbox / "civil_affairs").glob("*.xlsx"))[-1], as_of, "审批日期")
    with sqlite3.connect(inbox / "human_resources" / "exchange.sqlite") as db:
        db.execute("UPDATE rs_contribution_month SET wage_base = wage_base + 1 WHERE rowid % 30 = 0")
        delivered += db.execute("SELECT changes()").fetchone()[0]
        db.execute(
            "INSERT INTO rs_employment_event SELECT aac002, aac003, aac004, '失业登记', ?, NULL, work_area "
            "FROM rs_employment_event WHERE rowid % 30 = 0",
            (as_of.isoformat(),),
        )
        delivered += db.execute("SELECT changes()").fetchone()[0]
    return delivered


def main(households: int) -> None:
    source = county(households)
    home = OUT / f"nights_{households}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source / "inbox", home / "inbox")
    first_s, first_mib = night(home, FIRST)
    print(f"households={households:,}")
    print(f"first night            {first_s:7.1f} s  peak {first_mib:7,.0f} MiB   (targets: <= 30 s, <= 2,048 MiB)")
    print(f"  steps: {steps(home, FIRST)}")
    for label, as_of, deliver in (
        ("nothing new", FIRST + timedelta(days=1), False),
        ("one day's deliveries", FIRST + timedelta(days=2), True),
    ):
        rows = one_days_deliveries(home / "inbox", as_of) if deliver else 0
        peer = home.with_name(home.name + "_full")
        shutil.rmtree(peer, ignore_errors=True)
        shutil.copytree(home, peer, symlinks=True)
        seconds, mib = night(home, as_of)
        full_s, full_mib = night(peer, as_of, full=True)
        shutil.rmtree(peer)  # the peer's steps are not printed: the same steps, all of it
        target = 10 if not deliver else 20
        print(
            f"{label:<22} {seconds:7.1f} s  peak {mib:7,.0f} MiB   {100 * seconds / first_s:5.1f}% of the first night "
            f"(target <= {target}%){f'; {rows:,} rows delivered' if rows else ''}"
        )
        print(f"  steps: {steps(home, as_of)}")
        print(f"  peer: the same night --full {full_s:7.1f} s  peak {full_mib:7,.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
