"""The township lists printed as a cadre prints them: LibreOffice (headless, as installed by
`make`) turns a workbook into the PDF a printer gets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from lists.write import write_lists

D = date(2026, 11, 27)
VILLAGES = ("十八洞村", "金坪村", "排碧村", "板栗村")
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
PDFTOTEXT, PDFINFO = shutil.which("pdftotext"), shutil.which("pdfinfo")


def _township(households: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    register, flags = [], []
    for i in range(households):
        hid = f"043312400000{i:04d}"
        register.append(
            {
                "household_id": hid,
                "county": "花垣县",
                "person_id": f"{hid}01",
                "relation": "户主",
                "township": "龙潭镇",
                "village": VILLAGES[i % len(VILLAGES)],
                "name": "张" + "伟芳明丽"[i % 4] + ("强" if i % 3 else ""),
                "id_number": f"4331241970010{i:04d}"[:17] + "X",
                "phone": f"1380000{i:04d}",
                "household_size": 3 + i % 3,
                "household_type": "脱贫户" if i % 2 else "一般农户",
                "monitored_category": None,
                "risk_eliminated": None,
            }
        )
        flags.append(
            {
                "household_id": hid,
                "rule_id": "medical_burden",
                "rule_name": "因病支出骤增",
                "severity": "high" if i % 5 == 0 else "medium",
                "assistance": "医疗救助",
                "sentence": f"近12个月医疗个人负担 {30_000 + 137 * i:,} 元,占家庭年收入 64%"
                "(预警标准:脱贫户或监测户 5,000 元,或家庭年收入的 50% 即 23,400 元)",
                "status": "continuing" if i % 2 else "new",
                "first_flagged_date": D - timedelta(days=i % 20),
                "evidence": '{"figures": {"medical_burden": 30000}}',
                "records": [],
            }
        )
    return pl.DataFrame(flags), pl.DataFrame(register, schema_overrides={"monitored_category": pl.String, "risk_eliminated": pl.String})


def _pdf(workbook: Path, out: Path) -> Path:
    if None in (SOFFICE, PDFTOTEXT, PDFINFO):
        missing = "LibreOffice (soffice) and poppler-utils (pdftotext, pdfinfo)"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing: `make test` installs them")
        pytest.skip(f"{missing} missing: `make system-packages` installs them")
    profile = out / "profile"
    done = subprocess.run(
        [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf", "--outdir", str(out), str(workbook)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    pdf = out / workbook.with_suffix(".pdf").name
    assert done.returncode == 0 and pdf.exists(), done.stdout + done.stderr
    return pdf


def test_a_township_list_prints_on_a4_landscape_pages_each_with_its_header(tmp_path):
    flags, register = _township(31)
    path = write_lists(flags, register, D, tmp_path / "outbox")[0]
    pdf = _pdf(path, tmp_path)
    texts = subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    texts = texts.split("\f")[:-1]  # one text per page
    info = subprocess.run([PDFINFO, "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True).stdout
    sizes = [tuple(float(x) for x in line.split(":")[1].split("pts")[0].split(" x ")) for line in info.splitlines() if re.match(r"Page\s+\d+ size", line)]
    assert len(sizes) == len(texts)
    # Every sheet prints, on A4: the list (31 households), 已纳入, 汇总 and 说明.
    listing = [i for i, t in enumerate(texts) if "防返贫监测预警核查清单" in t and "户编号" in t]
    # 31 households of two-line evidence: 26 rows fit an A4 landscape page at the width's
    # scale, so the list takes 2 pages; then one page each for 已纳入, 汇总 and 说明.
    assert (len(listing), len(texts)) == (2, 5), [len(t) for t in texts]
    for width, height in sizes:
        assert abs(min(width, height) - 595) < 3 and abs(max(width, height) - 842) < 3, "A4"
    for text in (texts[i] for i in listing):
        # landscape, fitted to the width: every column's header on every page, the
        # township and the date in the page header, a page number in the footer
        assert all(name in text for name in ("户编号", "户主证件号码", "预警依据", "核查结果", "核查日期", "备注")), text[:300]
        assert "龙潭镇" in text and "2026-11-27" in text and "第" in text and "页" in text
    everyone = "".join(texts[i] for i in listing)
    assert all(f"043312400000{i:04d}" in everyone for i in range(31)), "户编号 whole, never cut or in E-notation"
    assert any("使用说明" in t or "怎样填写" in t for t in texts) and any("需入户核查户数" in t for t in texts)
    assert all(sizes[i][0] > sizes[i][1] for i in listing), "landscape"
    pages = [int(m) for t in (texts[i] for i in listing) for m in re.findall(r"第 (\d+) 页", t)]
    assert pages == list(range(1, len(listing) + 1)), "numbered pages"


def test_a_list_row_is_as_tall_as_its_longest_cell_wraps(tmp_path):
    """Neither Excel nor LibreOffice grows a row written without a height: each row is
    given 13.5 points a line of its tallest cell, plus 3. The 预警依据 column is 44 units
    wide, 43 to a line; a Chinese character takes two units, any other one."""
    import openpyxl

    sentences = {
        "甲" * 60: 3,  # 120 units
        "a" * 43: 1,
        "a" * 44: 2,
        "甲" * 21 + "a": 1,  # 43 units
        "甲" * 22: 2,  # 44 units
    }
    flags, register = _township(len(sentences))
    register = register.with_columns(pl.lit("脱贫户").alias("household_type"))  # one line of its 7 wide column
    # A rule's name short enough for one line of its column (12 wide, 11 to a line); no
    # first date (its 10 characters take two lines of its 10.5 wide column, 9 to a line).
    flags = flags.with_columns(
        pl.Series("sentence", list(sentences)),
        pl.lit("因病支出").alias("rule_name"),
        pl.lit(None, pl.Date).alias("first_flagged_date"),
    )
    path = write_lists(flags, register, D, tmp_path / "outbox")[0]
    sheet = openpyxl.load_workbook(path)["核查清单"]
    heights = {
        sheet.cell(r, 5).value: sheet.row_dimensions[r].height for r in range(3, sheet.max_row + 1) if sheet.cell(r, 5).value
    }
    expected = {f"043312400000{i:04d}": 13.5 * lines + 3 for i, lines in enumerate(sentences.values())}
    assert heights == expected
