"""Deliveries written by hand, one small file per contract case.

The content is spelled out here, cell by cell, so a reader sees exactly what a
department sent; only the bytes (GBK, xlsx) are produced by a library.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl

HEALTH_HEADER = (
    "结算流水号,结算类型,原结算流水号,姓名,证件类型,证件号码,参保地区划,就诊类别,定点医药机构名称,"
    "入院日期,出院日期,结算日期,医疗费总额,统筹基金支付,大病保险支付,医疗救助支付,个人自付,个人自费"
)

# Every date form, thousands separators, an Excel float ID, a 冲销 before its original,
# a 15-digit ID, spaces and an apostrophe, full-width digits, a lower-case x.
HEALTH_ROWS = (
    "JS001,正常,,张伟,居民身份证,43312419700101123X,433124,住院,花垣县人民医院,2026-10-01,2026-10-09,2026-10-10,"
    '"12,000.00","8,000.00",0,0,"2,500.00","1,500.00"',
    "JS002R,冲销,JS002,李娜,居民身份证,'433124198502022345,433124,普通门诊,花垣镇卫生院,,,2026/11/5,-300,-150,0,0,-100,-50",
    "JS002,正常,,李娜,社会保障卡, 433124198502022345 ,433124,普通门诊,花垣镇卫生院,,,2026年11月3日,300,150,0,0,100,50",
    "JS003,正常,,王芳,居民身份证,4.33124199E+17,433124,门诊慢特病,花垣县中医医院,,,20261104,800,500,0,0,200,100",
    "JS004,正常,,赵敏,居民身份证,４３３１２４１９９００３０３３４５８,433124,普通门诊,双龙镇卫生院,,,46330,120.5,60,0,0,40.5,20",
    "JS005,正常,,陈 强,居民身份证,433124650505123,433124,普通门诊,双龙镇卫生院,,,2026-11-06,90,45,0,0,30,15",
    "JS006,正常,,买买提.艾力,居民身份证,43312419700101123x,433124,住院,湘西州人民医院,2026/10/1,2026/10/20,2026-10-21,"
    "30000,18000,3000,1000,5000,3000",
)


def write_health(
    folder: Path,
    name: str = "yb_settlement_202611.csv",
    rows: tuple[str, ...] = HEALTH_ROWS,
    encoding: str = "gbk",
    header: str = HEALTH_HEADER,
    end: str = "\r\n",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes((header + "\r\n" + "\r\n".join(rows) + end).encode(encoding))
    return path


CIVIL_HEADER = (
    "序号",
    "姓名",
    "身份证号码",
    "救助类别",
    "变动类型",
    "保障人数",
    "月保障金额(元)",
    "临时救助金额(元)",
    "审批日期",
    "户籍地址",
    "联系电话",
    "备注",
)


def write_civil(
    folder: Path,
    name: str = "mz_changes_202611.xlsx",
    sheet: str = "Sheet1",
    rows: list[list] | None = None,
    title: bool = True,
    header: tuple = CIVIL_HEADER,
) -> Path:
    """An xlsx with a merged title row, a numeric (Excel-mangled) ID, a date cell, an
    Excel serial, text dates and an amount with thousands separators."""
    from datetime import date

    folder.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    if title:
        ws.append(["花垣县民政局社会救助对象变动明细(2026年11月)"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
    ws.append(list(header))
    for r in (
        rows
        if rows is not None
        else [
            [
                1,
                "张伟",
                "43312419700101123X",
                "农村低保",
                "新增",
                3,
                1260,
                None,
                date(2026, 11, 2),
                "花垣县双龙镇十八洞村3组",
                "13800000000",
                "",
            ],
            [
                2,
                "李娜",
                433124198502022000.0,
                "临时救助",
                "新增",
                1,
                None,
                "3,000.00",
                46330,
                "花垣县双龙十八洞2组",
                "",
                "因病",
            ],
            [
                3,
                "王芳",
                "'433124199003033456",
                "农村特困",
                "调整",
                1,
                800,
                None,
                "2026/10/15",
                "花垣县龙潭镇",
                "",
                "",
            ],
            [4, "赵敏", "", "困难残疾人生活补贴", "新增", 1, 90, None, "2026年9月1日", "花垣县", "", ""],
        ]
    ):
        ws.append(r)
    wb.save(path := folder / name)
    return path


DISASTER_HEADER = (
    "灾害编号",
    "灾害种类",
    "灾害发生日期",
    "乡镇",
    "行政村",
    "户主姓名",
    "户主身份证号",
    "家庭人口",
    "房屋受损情况",
    "农作物受灾面积(亩)",
    "农作物绝收面积(亩)",
    "直接经济损失(元)",
    "核查日期",
)


def write_disaster_csv(
    folder: Path, name: str = "yj_2026ZH001.csv", rows: tuple[str, ...] | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows or (
        '2026ZH001,洪涝,2026-10-18,双龙镇,十八洞村,张伟,43312419700101123X,4,严重损坏,3.5,1.0,"25,000",2026-10-25',
        "2026ZH001,洪涝,2026-10-18,双龙,十八洞,刘洋,,3,一般损坏,1.0,0,4000,2026-10-26",
    )
    path = folder / name
    path.write_bytes(
        ("\ufeff" + ",".join(DISASTER_HEADER) + "\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8")
    )
    return path
