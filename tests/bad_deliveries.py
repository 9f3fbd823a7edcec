"""A corpus of bad deliveries, as data: one function per mutation, one ``Case`` per bad night.

Every mutation writes real bytes into the inbox of a copy of the template county (or
changes its 人社 exchange database): GBK CSV for 医保, UTF-8-SIG CSV for the register and
应急, xlsx through openpyxl — or through zipfile where the workbook itself is the
problem —, SQLite for 人社. The table ``CASES`` at the bottom is the corpus: per case the
source, what arrives, the exit status the night must end with and the file it must name.

Most cases are the second night (2026-11-28) of the template county, the bad delivery a
NEW file whose name sorts after the existing ones and fits the source's pattern. A few
are first nights (2026-11-27): the bad file is among the first deliveries.

Contract of the exit status (``guardline run``): 0 every source was read (row-level
problems quarantined); 3 the night completed but a file or source was refused (each named
on stderr); 2 the night could not start or go on; 1 only for a bug.
"""

from __future__ import annotations

import csv
import functools
import io
import random
import sqlite3
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import polars as pl

from tests.handmade import CIVIL_HEADER, DISASTER_HEADER, HEALTH_HEADER

# ---------------------------------------------------------------------------------------
# The files the cases write (paths relative to the inbox, as stderr and the ledger name them)

REGISTER = "registry/register_20261126.xlsx"  # the template's register export
HI = "health_insurance/yb_settlement_202612_bad.csv"
HI_A = "health_insurance/yb_settlement_202612_a.csv"
HI_B = "health_insurance/yb_settlement_202612_b.csv"
HI_LINK = "health_insurance/yb_settlement_202612_link.csv"
HI_HIDDEN = "health_insurance/.yb_settlement_202612.csv"
CA = "civil_affairs/mz_changes_202612.xlsx"
CA_LOCK = "civil_affairs/~$mz.xlsx"
EM_X = "emergency_management/yj_4331242026ZH999.xlsx"
EM_C = "emergency_management/yj_4331242026ZH999.csv"
EM_FUHE = "emergency_management/yj_4331242026ZH999_fuhe.xlsx"
REG_NEW = "registry/register_20261128.csv"
REG_NEW_X = "registry/register_20261128.xlsx"
REG_FIRST_CSV = "registry/register_20261126.csv"
EXCHANGE = "human_resources/exchange.sqlite"
EX_EVENTS = "exchange:rs_employment_event"
EX_CONTRIB = "exchange:rs_contribution_month"

HEALTH_COLUMNS = tuple(HEALTH_HEADER.split(","))
REGISTER_TITLE = ("防返贫监测信息系统 农村人口信息", "花垣县  导出日期：2026-11-28")
CIVIL_TITLE = "花垣县民政局社会救助对象变动明细(2026年12月)"
BOMB_BYTES = 1_100_000_000  # what the zip bomb's sheet XML inflates to


@dataclass(frozen=True)
class Case:
    """One bad night.

    ``make`` writes the bad delivery into ``home`` (the county folder: ``home/inbox``, and
    after night 1 also ``home/stage``, ``home/outbox``, ``home/warehouse.duckdb``).
    ``file_named``: what exactly one stderr line must name (any of the alternatives) — the
    refused file as its path in the inbox, ``exchange:<table>`` for a 人社 table, or what
    stopped the night for exit 2. For exit 3 it is also the only ``failed`` row of
    processed_files.
    """

    id: str
    source: str  # registry, civil_affairs, health_insurance, emergency_management, human_resources, warehouse
    kind: str  # whole file | row | inbox | exchange | warehouse
    make: Callable[[Path], None]
    expect_exit: int
    file_named: str | tuple[str, ...] | None = None
    night: int = 2  # 1: a first night (fresh stage, --as-of 2026-11-27); 2: the template's next night
    delivered: str | None = None  # the file whose rows `fields` describes
    fields: tuple[str, ...] = ()  # one contract header per row of `delivered` that must be quarantined
    counts: tuple[tuple[str, int, int, int], ...] = ()  # (file, loaded, quarantined, duplicates)
    not_processed: tuple[str, ...] = ()  # inbox files that must be ignored: no trace in the ledger
    absent: tuple[str, ...] = ()  # text that must appear nowhere in the warehouse or the outbox
    outbox_has: tuple[str, ...] = ()  # text that must appear in some outbox CSV cell
    warehouse: str = "duckdb"  # duckdb | postgresql | postgres-scheme | locked | any other URL
    hr_url: str | None = None
    one_line: bool = False  # stderr is exactly one line
    summary: bool = False  # the summary table is printed even though the night stops (exit 2)
    seconds: float | None = None  # every run of the night finishes within this


# ---------------------------------------------------------------------------------------
# Building blocks: people of the template's register, and the writers


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_ok(text: object) -> bool:
    """GB 11643 check character, computed here (not with the code under test)."""
    s = str(text or "")
    if len(s) != 18 or not s[:17].isdigit():
        return False
    return "10X98765432"[sum(int(d) * w for d, w in zip(s[:17], _WEIGHTS, strict=True)) % 11] == s[17]


def broken_id(valid: str) -> str:
    """The same ID with a wrong check character."""
    return valid[:17] + ("0" if valid[17] != "0" else "1")


def register_table(inbox: Path) -> tuple[list[str], list[list]]:
    """The template's register: header (row 3) and rows, as the xlsx holds them."""
    wb = openpyxl.load_workbook(inbox / REGISTER, read_only=True)
    rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    return [str(h) for h in rows[2]], [r for r in rows[3:] if any(v is not None for v in r)]


def people(inbox: Path, heads_only: bool = False) -> list[dict]:
    """Register persons with a valid ID number (household heads only if asked)."""
    header, rows = register_table(inbox)
    out = [dict(zip(header, r, strict=True)) for r in rows]
    return [p for p in out if id_ok(p["证件号码"]) and (not heads_only or p["与户主关系"] == "户主")]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def csv_bytes(header: tuple[str, ...] | list[str], rows: list, encoding: str, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([_text(r[h]) for h in header] if isinstance(r, dict) else [_text(v) for v in r])
    return (("\ufeff" if bom else "") + out.getvalue()).encode(encoding)


def put(home: Path, rel: str, data: bytes) -> Path:
    path = home / "inbox" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def xlsx_bytes(rows: list, sheet: str = "Sheet1", titles: tuple[str, ...] = (), width: int = 0) -> bytes:
    """A workbook: title rows merged over ``width`` columns, then ``rows`` (header first)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for i, title in enumerate(titles, start=1):
        ws.append([title])
        if width:
            ws.merge_cells(start_row=i, start_column=1, end_row=i, end_column=width)
    for r in rows:
        ws.append(list(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def health_rows(inbox: Path, n: int, tag: str) -> list[dict]:
    """``n`` ordinary 正常 settlements of register persons, small amounts, 2026-11-20."""
    persons = people(inbox)
    return [
        {
            **dict.fromkeys(HEALTH_COLUMNS, ""),
            "结算流水号": f"BD{tag}{i:05d}",
            "结算类型": "正常",
            "姓名": p["姓名"],
            "证件类型": "居民身份证",
            "证件号码": p["证件号码"],
            "参保地区划": "433124",
            "就诊类别": "普通门诊",
            "定点医药机构名称": "花垣县人民医院",
            "结算日期": "2026-11-20",
            "医疗费总额": "30.00",
            "统筹基金支付": "15.00",
            "大病保险支付": "0.00",
            "医疗救助支付": "0.00",
            "个人自付": "10.00",
            "个人自费": "5.00",
        }
        for i, p in zip(range(n), _cycle(persons), strict=False)
    ]


def _cycle(items: list):
    while True:
        yield from items


def health(home: Path, rel: str, rows: list[dict], encoding: str = "gbk") -> Path:
    return put(home, rel, csv_bytes(HEALTH_COLUMNS, rows, encoding))


def civil_rows(inbox: Path, n: int) -> list[list]:
    """``n`` 临时救助 approvals of distinct household heads, in the contract's column order."""
    return [
        [
            i,
            p["姓名"],
            p["证件号码"],
            "临时救助",
            "新增",
            1,
            None,
            "200.00",
            "2026-11-20",
            f"花垣县{p['乡(镇)']}{p['行政村']}",
            "",
            "",
        ]
        for i, p in enumerate(people(inbox, heads_only=True)[:n], start=1)
    ]


def civil(home: Path, rows: list[list], header: tuple[str, ...] = CIVIL_HEADER, rel: str = CA) -> Path:
    return put(home, rel, xlsx_bytes([header, *rows], titles=(CIVIL_TITLE,), width=len(header)))


def disaster_rows(inbox: Path, n: int) -> list[list]:
    """``n`` verified households of disaster 4331242026ZH999 (洪涝, 2026-11-10), distinct heads."""
    return [
        [
            "4331242026ZH999",
            "洪涝",
            "2026-11-10",
            p["乡(镇)"],
            p["行政村"],
            p["姓名"],
            p["证件号码"],
            p["人数"],
            "未受损",
            "1.5",
            "0.0",
            "300.00",
            "2026-11-15",
        ]
        for p in people(inbox, heads_only=True)[:n]
    ]


def disaster_xlsx(home: Path, rows: list[list], rel: str = EM_X, header=DISASTER_HEADER) -> Path:
    return put(home, rel, xlsx_bytes([header, *rows], sheet="灾情核查"))


def disaster_csv(home: Path, rows: list[list], rel: str = EM_C, header=DISASTER_HEADER, encoding="utf-8"):
    return put(home, rel, csv_bytes(header, rows, encoding, bom=encoding == "utf-8"))


def register_csv(home: Path, header: list[str], rows: list[list], rel: str = REG_NEW, encoding="utf-8"):
    return put(home, rel, csv_bytes(header, rows, encoding, bom=encoding == "utf-8"))


def exchange(home: Path, *statements: tuple[str, tuple]) -> None:
    """Change the 人社 exchange database of this county copy."""
    con = sqlite3.connect(home / "inbox" / EXCHANGE)
    try:
        for sql, params in statements:
            con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def garbage(n: int, seed: int = 5) -> bytes:
    return random.Random(seed).randbytes(n)


def one_bad(rows: list, at: int, change: dict, header: tuple[str, ...] | None = None) -> list:
    """``rows`` with row ``at`` changed, by contract header (list rows: give their ``header``)."""
    out = [dict(r) if isinstance(r, dict) else list(r) for r in rows]
    for column, value in change.items():
        out[at][column if header is None else header.index(column)] = value
    return out


# ---------------------------------------------------------------------------------------
# registry/ — the register export


def reg_first_night_empty(home: Path) -> None:
    """First night: the only register export is an empty CSV."""
    (home / "inbox" / REGISTER).unlink()
    put(home, REG_FIRST_CSV, b"")


def reg_first_night_binary_xlsx(home: Path) -> None:
    """First night: the register .xlsx is binary garbage."""
    put(home, REGISTER, garbage(8192))


def reg_header_only(home: Path) -> None:
    header, _ = register_table(home / "inbox")
    register_csv(home, header, [])


def reg_missing_person_id(home: Path) -> None:
    """The whole register, without the 人编号 column."""
    header, rows = register_table(home / "inbox")
    k = header.index("人编号")
    register_csv(home, header[:k] + header[k + 1 :], [r[:k] + r[k + 1 :] for r in rows])


def reg_renamed_household_id_xlsx(home: Path) -> None:
    """The national system's xlsx layout, 户编号 renamed beyond recognition."""
    header, rows = register_table(home / "inbox")
    header = ["col_4" if h == "户编号" else h for h in header]
    put(home, REG_NEW_X, xlsx_bytes([header, *rows], "农村人口", REGISTER_TITLE, len(header)))


def reg_gbk(home: Path) -> None:
    """The whole register as CSV, but GBK where the contract says UTF-8."""
    header, rows = register_table(home / "inbox")
    register_csv(home, header, rows, encoding="gbk")


def reg_no_header_sheet(home: Path) -> None:
    """An xlsx whose only sheet is a read-me, not the register."""
    rows = [["导出说明"], ["本文件由系统自动生成"], ["如有疑问请联系县乡村振兴局"]]
    put(home, REG_NEW_X, xlsx_bytes(rows, "说明"))


def reg_duplicate_person_id(home: Path) -> None:
    """The whole register, one 人编号 delivered twice with a different name."""
    header, rows = register_table(home / "inbox")
    twin = list(rows[10])
    twin[header.index("姓名")] = f"{twin[header.index('姓名')]}二"
    register_csv(home, header, [*rows, twin])


CSV_INJECTION = ("=1+1", "@SUM(A1:A9)", "+cmd|' /C calc'!A0")


def reg_csv_injection_heads(home: Path) -> None:
    """The whole register; the heads of three households flagged on night 1 renamed to
    formulas — their names go into the township lists. The first is flagged by a rule that
    reads the register alone (its income): a head whose name no longer agrees with his
    own department records may lose their links (an exact ID beside a different name goes
    to review), and with them the flags that the records raised."""
    flagged = pl.read_parquet(home / "stage" / "flags" / "2026-11-27.parquet").filter(pl.col("status") != "resolved")
    by_register = flagged.group_by("household_id").agg((pl.col("records").list.len() == 0).any().alias("register_only"))
    households = by_register.sort("register_only", "household_id", descending=[True, False])["household_id"].to_list()[:3]
    header, rows = register_table(home / "inbox")
    hh, rel, name = (header.index(c) for c in ("户编号", "与户主关系", "姓名"))
    renamed = dict(zip(households, CSV_INJECTION, strict=False))
    for r in rows:
        if r[rel] == "户主" and r[hh] in renamed:
            r[name] = renamed[r[hh]]
    register_csv(home, header, rows)


# ---------------------------------------------------------------------------------------
# civil_affairs/ — 民政 xlsx, title row 1, header row 2


def ca_empty(home: Path) -> None:
    put(home, CA, b"")


def ca_header_only(home: Path) -> None:
    civil(home, [])


def ca_missing_category(home: Path) -> None:
    """No 救助类别 column (the rows lose that cell too)."""
    k = CIVIL_HEADER.index("救助类别")
    rows = civil_rows(home / "inbox", 10)
    civil(home, [r[:k] + r[k + 1 :] for r in rows], CIVIL_HEADER[:k] + CIVIL_HEADER[k + 1 :])


def ca_html_not_zip(home: Path) -> None:
    """An "Excel export" that is an HTML table named .xlsx: not a zip at all."""
    cells = "".join(f"<td>{h}</td>" for h in CIVIL_HEADER)
    put(home, CA, f"<html><body><table><tr>{cells}</tr></table></body></html>".encode())


def ca_zip_not_workbook(home: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("说明.txt", "本月无变动".encode())
        z.writestr("data.csv", ",".join(CIVIL_HEADER).encode())
    put(home, CA, buf.getvalue())


def ca_truncated_xlsx(home: Path) -> None:
    """A real workbook cut off half-way through the transfer."""
    data = xlsx_bytes([CIVIL_HEADER, *civil_rows(home / "inbox", 10)], titles=(CIVIL_TITLE,))
    put(home, CA, data[: len(data) // 2])


def ca_serial_99999(home: Path) -> None:
    """Twenty approvals, one 审批日期 an Excel serial 99999 (2173-10-14), a number cell."""
    civil(home, one_bad(civil_rows(home / "inbox", 20), 7, {"审批日期": 99999}, CIVIL_HEADER))


def ca_minus_inf(home: Path) -> None:
    """Twenty approvals, one 农村低保 月保障金额 of -inf."""
    civil(
        home,
        one_bad(
            civil_rows(home / "inbox", 20),
            4,
            {"救助类别": "农村低保", "月保障金额(元)": "-inf", "临时救助金额(元)": None},
            CIVIL_HEADER,
        ),
    )


def ca_duplicate_row(home: Path) -> None:
    """Nine rows, the last an exact copy of the fifth."""
    rows = civil_rows(home / "inbox", 8)
    civil(home, [*rows, list(rows[4])])


def ca_invalid_id_small(home: Path) -> None:
    """Five approvals, one with a wrong check character."""
    rows = civil_rows(home / "inbox", 5)
    civil(home, one_bad(rows, 2, {"身份证号码": broken_id(rows[2][2])}, CIVIL_HEADER))


def ca_lock_file(home: Path) -> None:
    """Excel's owner file (~$name.xlsx) left behind by someone who has the workbook open."""
    owner = b"\x09guardline" + b" " * 44 + "guardline".encode("utf-16-le")
    put(home, CA_LOCK, owner.ljust(165, b"\x00"))


def ca_stray_cell_xfd(home: Path) -> None:
    """A good workbook (title, header, ten rows) plus one stray cell at XFD1048576: refused,
    without the reader allocating the area in between."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([CIVIL_TITLE])
    for r in [CIVIL_HEADER, *civil_rows(home / "inbox", 10)]:
        ws.append(list(r))
    ws["XFD1048576"] = "x"
    path = home / "inbox" / CA
    wb.save(path)


@functools.cache
def _zip_bomb() -> bytes:
    """A workbook with a header and three rows whose sheet XML inflates to more than 1 GB
    (XML comments), written in chunks: about 1 MB on disk and in memory."""
    rows = [
        [i, name, ident, "临时救助", "新增", 1, None, "200.00", "2026-11-20", "花垣县", "", ""]
        for i, (name, ident) in enumerate(
            [("张伟", "43312419700101123X"), ("李娜", "433124198502022345"), ("王芳", "433124199003033456")],
            start=1,
        )
    ]
    plain = zipfile.ZipFile(io.BytesIO(xlsx_bytes([CIVIL_HEADER, *rows], titles=(CIVIL_TITLE,))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        for item in plain.infolist():
            data = plain.read(item.filename)
            if item.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(item.filename, data)
                continue
            head, tail = data.split(b"</sheetData>", 1)
            chunk = b"<!---->" * (1 << 17)
            with bomb.open(item.filename, "w", force_zip64=True) as sheet:
                sheet.write(head)
                for _ in range(BOMB_BYTES // len(chunk) + 1):
                    sheet.write(chunk)
                sheet.write(b"</sheetData>" + tail)
    return out.getvalue()


def ca_zip_bomb(home: Path) -> None:
    put(home, CA, _zip_bomb())


# ---------------------------------------------------------------------------------------
# health_insurance/ — 医保 GBK CSV


def hi_empty(home: Path) -> None:
    put(home, HI, b"")


def hi_whitespace(home: Path) -> None:
    put(home, HI, b"  \r\n\t\r\n   \r\n")


def hi_header_only(home: Path) -> None:
    put(home, HI, HEALTH_HEADER.encode("gbk") + b"\r\n")


def hi_binary(home: Path) -> None:
    put(home, HI, garbage(4096))


def hi_utf8(home: Path) -> None:
    """Twenty good settlements, UTF-8 where the contract says GBK."""
    health(home, HI, health_rows(home / "inbox", 20, "U"), encoding="utf-8")


def hi_truncated(home: Path) -> None:
    """Twenty settlements, the last row cut in the middle of a field, no line end."""
    data = csv_bytes(HEALTH_COLUMNS, health_rows(home / "inbox", 20, "T"), "gbk")
    put(home, HI, data.rstrip(b"\r\n")[:-12])


def hi_nan(home: Path) -> None:
    health(home, HI, one_bad(health_rows(home / "inbox", 20, "N"), 9, {"个人自付": "NaN"}))


def hi_1e300(home: Path) -> None:
    health(home, HI, one_bad(health_rows(home / "inbox", 20, "E"), 9, {"个人自费": "1e300"}))


def hi_negative_self_pay(home: Path) -> None:
    """A negative 个人自付 on a 正常 settlement; beside it a 冲销 with its original, whose
    negative amounts are the contract's and stay fine."""
    rows = one_bad(health_rows(home / "inbox", 20, "M"), 3, {"个人自付": "-80.00"})
    original = rows[5]
    reversal = {
        **original,
        "结算流水号": original["结算流水号"] + "R",
        "结算类型": "冲销",
        "原结算流水号": original["结算流水号"],
        "结算日期": "2026-11-21",
        **{k: "-" + original[k] for k in ("医疗费总额", "统筹基金支付", "个人自付", "个人自费")},
    }
    health(home, HI, [*rows, reversal])


def hi_year_2173(home: Path) -> None:
    health(home, HI, one_bad(health_rows(home / "inbox", 20, "Y"), 9, {"结算日期": "2173-10-14"}))


def hi_unknown_type(home: Path) -> None:
    health(home, HI, one_bad(health_rows(home / "inbox", 20, "K"), 9, {"结算类型": "未知"}))


def hi_garbage_amount(home: Path) -> None:
    health(home, HI, one_bad(health_rows(home / "inbox", 20, "G"), 9, {"医疗费总额": "1,2,3元x"}))


def hi_nul_after_64k(home: Path) -> None:
    """600 good settlements (more than 64 KB), then one whose 结算流水号 holds a NUL."""
    rows = health_rows(home / "inbox", 601, "Z")
    rows[600]["结算流水号"] = "BDZ\x0000600"
    path = health(home, HI, rows)
    assert path.read_bytes().index(b"\x00") > 65536


def hi_csv_injection(home: Path) -> None:
    """Names that are spreadsheet formulas: they load like any name."""
    rows = health_rows(home / "inbox", 21, "J")
    rows[3]["姓名"], rows[4]["姓名"] = "=1+1", "+cmd|' /C calc'!A0"
    health(home, HI, rows)


def hi_invalid_id_small(home: Path) -> None:
    """Nine settlements, one ID with a wrong check character."""
    rows = health_rows(home / "inbox", 9, "I")
    health(home, HI, one_bad(rows, 4, {"证件号码": broken_id(rows[4]["证件号码"])}))


SECRET = "SECRETROW"


def hi_symlink_outside(home: Path) -> None:
    """A symlink in the inbox to a settlements file outside it."""
    target = home.parent / "outside" / "yb_settlement_secret.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {**r, "结算流水号": f"{SECRET}{i:03d}"} for i, r in enumerate(health_rows(home / "inbox", 5, "S"))
    ]
    target.write_bytes(csv_bytes(HEALTH_COLUMNS, rows, "gbk"))
    (home / "inbox" / HI_LINK).symlink_to(target)


def hi_same_bytes_two_names(home: Path) -> None:
    data = csv_bytes(HEALTH_COLUMNS, health_rows(home / "inbox", 10, "D"), "gbk")
    put(home, HI_A, data)
    put(home, HI_B, data)


def hi_hidden_file(home: Path) -> None:
    put(home, HI_HIDDEN, garbage(2048))


# ---------------------------------------------------------------------------------------
# emergency_management/ — 应急 xlsx (sheet 灾情核查) or UTF-8 CSV


def em_whitespace_csv(home: Path) -> None:
    put(home, EM_C, "\ufeff  \r\n\r\n\t\r\n".encode())


def em_gbk_csv(home: Path) -> None:
    """Ten verified households, GBK where the contract says UTF-8."""
    disaster_csv(home, disaster_rows(home / "inbox", 10), encoding="gbk")


def em_renamed_date_csv(home: Path) -> None:
    header = tuple("字段3" if h == "灾害发生日期" else h for h in DISASTER_HEADER)
    disaster_csv(home, disaster_rows(home / "inbox", 10), header=header)


def em_no_header_sheet(home: Path) -> None:
    """A workbook of something else: a summary by township, no 灾情核查 header anywhere."""
    rows = [["乡镇", "受灾户数", "直接经济损失合计"], ["双龙镇", 12, 36000], ["花垣镇", 3, 9000]]
    put(home, EM_X, xlsx_bytes(rows, "统计表"))


def em_xlsx_named_csv(home: Path) -> None:
    """A real 应急 workbook saved under a .csv name."""
    rows = [DISASTER_HEADER, *disaster_rows(home / "inbox", 10)]
    put(home, EM_C, xlsx_bytes(rows, "灾情核查"))


def em_header_only_xlsx(home: Path) -> None:
    disaster_xlsx(home, [])


def em_impossible_date(home: Path) -> None:
    disaster_xlsx(
        home, one_bad(disaster_rows(home / "inbox", 20), 6, {"灾害发生日期": "2026-02-30"}, DISASTER_HEADER)
    )


def em_inf_loss(home: Path) -> None:
    disaster_csv(
        home, one_bad(disaster_rows(home / "inbox", 20), 6, {"直接经济损失(元)": "inf"}, DISASTER_HEADER)
    )


def em_control_chars_name(home: Path) -> None:
    """A bell and an escape sequence inside a 户主姓名."""
    rows = disaster_rows(home / "inbox", 20)
    name = rows[6][DISASTER_HEADER.index("户主姓名")]
    disaster_csv(home, one_bad(rows, 6, {"户主姓名": f"{name[:1]}\x07{name[1:]}\x1b[0m"}, DISASTER_HEADER))


def em_fuhe_blank_id(home: Path) -> None:
    """A one-row re-verification whose only row has a blank 户主身份证号 (the contract's
    fallback key: 灾害编号, 乡镇, 行政村, 户主姓名)."""
    disaster_xlsx(
        home,
        one_bad(disaster_rows(home / "inbox", 1), 0, {"户主身份证号": None}, DISASTER_HEADER),
        rel=EM_FUHE,
    )


def em_only_cell_xfd(home: Path) -> None:
    """A workbook whose one cell sits at XFD1048576."""
    wb = openpyxl.Workbook()
    wb.active.title = "灾情核查"
    wb.active["XFD1048576"] = "灾害编号"
    wb.save(home / "inbox" / EM_X)


# ---------------------------------------------------------------------------------------
# human_resources — the 人社 exchange database (inbox/human_resources/exchange.sqlite)


def _someone(home: Path) -> dict:
    return people(home / "inbox")[3]


def hr_blob_aac002(home: Path) -> None:
    p = _someone(home)
    exchange(
        home,
        (
            "INSERT INTO rs_contribution_month VALUES (?, ?, 202610, 4000, '正常缴费')",
            (b"\xde\xad\xbe\xef", p["姓名"]),
        ),
    )


def hr_blob_aac003(home: Path) -> None:
    p = _someone(home)
    exchange(
        home,
        (
            "INSERT INTO rs_employment_event VALUES (?, ?, '1', '失业登记', '2026-11-02', '', '')",
            (p["证件号码"], b"\xff\xfe\x00"),
        ),
    )


def hr_missing_table(home: Path) -> None:
    exchange(home, ("DROP TABLE rs_contribution_month", ()))


def hr_missing_column(home: Path) -> None:
    exchange(home, ("ALTER TABLE rs_employment_event DROP COLUMN event_type", ()))


def hr_text_period(home: Path) -> None:
    p = _someone(home)
    exchange(
        home,
        (
            "INSERT INTO rs_contribution_month VALUES (?, ?, 'abcdef', 4000, '正常缴费')",
            (p["证件号码"], p["姓名"]),
        ),
    )


def hr_null_event_date(home: Path) -> None:
    p = _someone(home)
    exchange(
        home,
        (
            "INSERT INTO rs_employment_event VALUES (?, ?, '1', '失业登记', NULL, '', '')",
            (p["证件号码"], p["姓名"]),
        ),
    )


def hr_garbage_file(home: Path) -> None:
    (home / "inbox" / EXCHANGE).write_bytes(garbage(16384))


def nothing(home: Path) -> None:
    """No bad delivery: the night's trouble is in its arguments."""


def a_good_file(home: Path) -> None:
    """Ten ordinary settlements: a night with something to load."""
    health(home, "health_insurance/yb_settlement_202612_good.csv", health_rows(home / "inbox", 10, "P"))


# ---------------------------------------------------------------------------------------
# The corpus

R, C, H, E, X, W = (
    "registry",
    "civil_affairs",
    "health_insurance",
    "emergency_management",
    "human_resources",
    "warehouse",
)
WHOLE, ROW, INBOX, EXCH, WH = "whole file", "row", "inbox", "exchange", "warehouse"
SLOW = 60.0  # generous bound for the pathological workbooks

# fmt: off
CASES: tuple[Case, ...] = (
    # registry ------------------------------------------------------------------------
    Case("reg-first-night-empty-csv", R, WHOLE, reg_first_night_empty, 2, REG_FIRST_CSV, night=1, summary=True),
    Case("reg-first-night-binary-xlsx", R, WHOLE, reg_first_night_binary_xlsx, 2, REGISTER, night=1, summary=True),
    Case("reg-header-only-csv", R, WHOLE, reg_header_only, 3, REG_NEW),
    Case("reg-missing-person-id", R, WHOLE, reg_missing_person_id, 3, REG_NEW),
    Case("reg-renamed-column-xlsx", R, WHOLE, reg_renamed_household_id_xlsx, 3, REG_NEW_X),
    Case("reg-gbk-not-utf8", R, WHOLE, reg_gbk, 3, REG_NEW),
    Case("reg-xlsx-without-register-sheet", R, WHOLE, reg_no_header_sheet, 3, REG_NEW_X),
    Case("reg-duplicate-person-id", R, ROW, reg_duplicate_person_id, 0, delivered=REG_NEW, fields=("人编号", "人编号")),
    Case("reg-csv-injection-head-names", R, ROW, reg_csv_injection_heads, 0, delivered=REG_NEW, outbox_has=("=1+1",)),
    # civil_affairs ---------------------------------------------------------------------
    Case("ca-empty", C, WHOLE, ca_empty, 3, CA),
    Case("ca-header-only", C, WHOLE, ca_header_only, 3, CA),
    Case("ca-missing-column", C, WHOLE, ca_missing_category, 3, CA),
    Case("ca-html-not-zip", C, WHOLE, ca_html_not_zip, 3, CA),
    Case("ca-zip-not-workbook", C, WHOLE, ca_zip_not_workbook, 3, CA),
    Case("ca-truncated-xlsx", C, WHOLE, ca_truncated_xlsx, 3, CA),
    Case("ca-excel-serial-99999", C, ROW, ca_serial_99999, 0, delivered=CA, fields=("审批日期",), counts=((CA, 19, 1, 0),)),
    Case("ca-minus-inf", C, ROW, ca_minus_inf, 0, delivered=CA, fields=("月保障金额(元)",), counts=((CA, 19, 1, 0),)),
    Case("ca-nine-rows-one-duplicate", C, ROW, ca_duplicate_row, 0, delivered=CA, counts=((CA, 8, 0, 1),)),
    Case("ca-one-invalid-id-small", C, ROW, ca_invalid_id_small, 0, delivered=CA, counts=((CA, 5, 0, 0),)),
    Case("ca-excel-lock-file", C, INBOX, ca_lock_file, 0, not_processed=(CA_LOCK,)),
    # health_insurance --------------------------------------------------------------
    Case("hi-empty", H, WHOLE, hi_empty, 3, HI),
    Case("hi-whitespace-only", H, WHOLE, hi_whitespace, 3, HI),
    Case("hi-header-only", H, WHOLE, hi_header_only, 3, HI),
    Case("hi-binary-garbage", H, WHOLE, hi_binary, 3, HI),
    Case("hi-utf8-not-gbk", H, WHOLE, hi_utf8, 3, HI),
    Case("hi-truncated", H, WHOLE, hi_truncated, 3, HI),
    Case("hi-first-night-empty", H, WHOLE, hi_empty, 3, HI, night=1),
    Case("hi-nan-amount", H, ROW, hi_nan, 0, delivered=HI, fields=("个人自付",), counts=((HI, 19, 1, 0),)),
    Case("hi-1e300-amount", H, ROW, hi_1e300, 0, delivered=HI, fields=("个人自费",), counts=((HI, 19, 1, 0),)),
    Case("hi-negative-self-pay", H, ROW, hi_negative_self_pay, 0, delivered=HI, fields=("个人自付",), counts=((HI, 20, 1, 0),)),
    Case("hi-year-2173", H, ROW, hi_year_2173, 0, delivered=HI, fields=("结算日期",), counts=((HI, 19, 1, 0),)),
    Case("hi-type-not-in-list", H, ROW, hi_unknown_type, 0, delivered=HI, fields=("结算类型",), counts=((HI, 19, 1, 0),)),
    Case("hi-garbage-amount", H, ROW, hi_garbage_amount, 0, delivered=HI, fields=("医疗费总额",), counts=((HI, 19, 1, 0),)),
    Case("hi-nul-in-key-after-64k", H, ROW, hi_nul_after_64k, 0, delivered=HI, fields=("结算流水号",), counts=((HI, 600, 1, 0),)),
    Case("hi-csv-injection-names", H, ROW, hi_csv_injection, 0, delivered=HI, counts=((HI, 21, 0, 0),)),
    Case("hi-one-invalid-id-small", H, ROW, hi_invalid_id_small, 0, delivered=HI, counts=((HI, 9, 0, 0),)),
    Case("hi-symlink-outside-inbox", H, INBOX, hi_symlink_outside, 3, HI_LINK, absent=(SECRET,)),
    Case("hi-same-bytes-two-names", H, INBOX, hi_same_bytes_two_names, 0, counts=((HI_A, 10, 0, 0), (HI_B, 0, 0, 10))),
    Case("hi-hidden-file", H, INBOX, hi_hidden_file, 0, not_processed=(HI_HIDDEN,)),
    # emergency_management ------------------------------------------------------------
    Case("em-whitespace-only-csv", E, WHOLE, em_whitespace_csv, 3, EM_C),
    Case("em-gbk-not-utf8-csv", E, WHOLE, em_gbk_csv, 3, EM_C),
    Case("em-renamed-column-csv", E, WHOLE, em_renamed_date_csv, 3, EM_C),
    Case("em-xlsx-without-header-sheet", E, WHOLE, em_no_header_sheet, 3, EM_X),
    Case("em-xlsx-named-csv", E, WHOLE, em_xlsx_named_csv, 3, EM_C),
    Case("em-header-only-xlsx", E, WHOLE, em_header_only_xlsx, 3, EM_X),
    Case("em-impossible-date", E, ROW, em_impossible_date, 0, delivered=EM_X, fields=("灾害发生日期",), counts=((EM_X, 19, 1, 0),)),
    Case("em-inf-loss", E, ROW, em_inf_loss, 0, delivered=EM_C, fields=("直接经济损失(元)",), counts=((EM_C, 19, 1, 0),)),
    Case("em-control-chars-in-name", E, ROW, em_control_chars_name, 0, delivered=EM_C, fields=("户主姓名",), counts=((EM_C, 19, 1, 0),)),
    Case("em-fuhe-one-row-blank-id", E, ROW, em_fuhe_blank_id, 0, delivered=EM_FUHE, counts=((EM_FUHE, 1, 0, 0),)),
    # human_resources: the exchange database --------------------------------------------
    Case("hr-blob-aac002", X, EXCH, hr_blob_aac002, 0, delivered=EX_CONTRIB, fields=("aac002",)),
    Case("hr-blob-aac003", X, EXCH, hr_blob_aac003, 0, delivered=EX_EVENTS, fields=("aac003",)),
    Case("hr-missing-table", X, EXCH, hr_missing_table, 3, EX_CONTRIB),
    Case("hr-missing-column", X, EXCH, hr_missing_column, 3, EX_EVENTS),
    Case("hr-text-period", X, EXCH, hr_text_period, 0, delivered=EX_CONTRIB, fields=("period",)),
    Case("hr-null-event-date", X, EXCH, hr_null_event_date, 0, delivered=EX_EVENTS, fields=("event_date",)),
    Case("hr-first-night-null-event-date", X, EXCH, hr_null_event_date, 0, night=1, delivered=EX_EVENTS, fields=("event_date",)),
    Case("hr-exchange-file-garbage", X, EXCH, hr_garbage_file, 2, ("exchange",), one_line=True),
    Case(
        "hr-url-no-server", X, EXCH, nothing, 2, ("exchange", "hr-url", "127.0.0.1"),
        hr_url="postgresql+psycopg://nobody@127.0.0.1:1/x", one_line=True, seconds=10,
    ),
    # warehouse -------------------------------------------------------------------------
    Case(
        "wh-postgresql-unreachable", W, WH, a_good_file, 2, ("warehouse", "127.0.0.1"),
        warehouse="postgresql+psycopg://postgres@127.0.0.1:1/none", one_line=True, seconds=15,
    ),
    Case("wh-duckdb-locked", W, WH, a_good_file, 2, ("warehouse.duckdb",), warehouse="locked", one_line=True),
    Case("wh-postgres-scheme", W, WH, a_good_file, 0, warehouse="postgres-scheme"),
    # pathological workbooks last: on a reader that allocates what a sheet declares they
    # can take the interpreter down with them ------------------------------------------
    Case("em-only-cell-at-xfd1048576", E, WHOLE, em_only_cell_xfd, 3, EM_X, seconds=SLOW),
    Case("ca-stray-cell-at-xfd1048576", C, WHOLE, ca_stray_cell_xfd, 3, CA, seconds=SLOW),
    Case("ca-zip-bomb", C, WHOLE, ca_zip_bomb, 3, CA, seconds=SLOW),
)
# fmt: on

# The same assertions against a fresh PostgreSQL warehouse.
POSTGRESQL = (
    "hi-empty",
    "reg-missing-person-id",
    "reg-duplicate-person-id",
    "ca-minus-inf",
    "hi-nul-in-key-after-64k",
    "hi-same-bytes-two-names",
    "em-control-chars-in-name",
    "hr-blob-aac002",
    "hr-missing-table",
)

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "case ids are unique"
