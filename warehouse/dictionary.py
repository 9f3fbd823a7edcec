"""The data dictionary for analysts: every view and column they read, in words.

One source: ``DICTIONARY`` below; ``guardline dictionary`` prints it as Markdown and a
test holds it to the views the migrations actually create.
"""

from __future__ import annotations

DICTIONARY: dict[str, tuple[str, dict[str, str]]] = {
    "v_record_links": (
        "One row per department record (its latest version): who it is about. Since "
        "migration 0006 a record is named by its keyed pseudonym, not by its record key "
        "(which holds ID numbers, and for 民政 the person's name and benefit); the "
        "monitoring role reads the key in v_record_links_identified.",
        {
            "source": "civil_affairs, health_insurance, emergency_management, human_resources",
            "record_pseudonym": "r and 20 letters: an HMAC of the record key, stable across nights under one "
            "pseudonym key; the same record always has the same pseudonym",
            "event_date": "the record's own date (医保 结算日期, 民政 审批日期, 应急 灾害发生日期, 人社 event "
            "date or the first day of the contribution month)",
            "amount": "the record's own amount in 元: 医保 个人负担 (个人自付 + 个人自费), 民政 monthly or "
            "one-off amount, 应急 直接经济损失, 人社 wage base; null where a record has none",
            "person_id": "人编号 of the register, null when unmatched",
            "household_id": "户编号 of the register, null when unmatched",
            "match_status": "matched, review (a person must decide), unmatched",
            "match_probability": "0..1, the model's probability for the chosen (or best) candidate",
            "match_method": "exact id (valid ID found, nothing disagreeing outright), probabilistic, reviewed, needs review, no candidate…",
        },
    ),
    "v_flagged_households": (
        "Each county's latest night's flags: one row per household and rule that fired (new or "
        "continuing) or stopped firing (resolved).",
        {
            "household_id": "户编号",
            "rule_id": "medical_burden, income_drop, disaster_loss, new_social_assistance, below_line",
            "as_of_date": "the run date D",
            "severity": "high, medium, low",
            "first_flagged_date": "when this household first fired this rule in the current episode",
            "status": "new (first night), continuing, resolved (stopped firing tonight)",
            "evidence": "JSON: figures (the values and thresholds that fired the rule) and source_records, "
            "the records behind them named by their record_pseudonym (since migration 0006)",
            "assistance": "suggested help: 兜底保障 / 就业帮扶 / 产业帮扶 / 医疗救助 / 住房救助",
        },
    ),
    "v_exit_candidates": (
        "Monitored households that may be proposed for exit (有序退出) as of each county's latest night.",
        {
            "household_id": "户编号",
            "as_of_date": "the run date D",
            "months_identified": "months since 识别监测时间",
            "est_income_per_capita": "estimated per-capita income after lost wages (元)",
            "monitoring_line": "the monitoring line that applied (元 per person per year)",
            "members_can_work": "members whose 劳动技能 is 技能劳动力 or 普通劳动力",
        },
    ),
    "v_persons_masked": (
        "The register's persons as analysts may see them: masked numbers, keyed pseudonyms.",
        {
            "person_id": "人编号",
            "household_id": "户编号",
            "id_masked": "the ID number with all but its first 6 and last 4 characters starred",
            "id_pseudonym": "HMAC-SHA256 of the ID number written in 20 letters (never digits, so that it "
            "cannot read as a number), stable across runs under one key",
            "sex": "男 / 女",
            "relation": "与户主关系",
            "labour": "劳动技能",
            "health": "健康状况",
            "county": "县",
            "township": "乡(镇)",
            "village": "行政村",
            "phone_masked": "the household phone with all but its first 3 and last 4 digits starred",
        },
    ),
    "v_township_summary": (
        "Households to visit in each county's latest night, by township, rule and severity.",
        {
            "county": "县",
            "township": "乡(镇)",
            "as_of_date": "the run date D",
            "rule_id": "the rule",
            "severity": "high, medium, low",
            "households": "households firing this rule at this severity",
            "new_flags": "of which new tonight",
        },
    ),
    "v_visits": (
        "Every verification result cadres returned (guardline visits import), per household, "
        "rule and the list the row answered. Who visited and the remarks are not here (free "
        "text about people: the monitoring role reads the visits table).",
        {
            "household_id": "户编号",
            "township": "乡(镇)",
            "village": "行政村",
            "rule_id": "the rule the visit answered (a row of the list answers every rule on it)",
            "list_date": "the night of the list the cadre filled in",
            "result": "核查结果 as written: one of the province's vocabulary (visits/config.yaml)",
            "outcome": "identified (纳入监测), dismissed (not listed again unless worse), unverified (listed again)",
            "visit_date": "核查日期",
            "days_after_list": "visit_date - list_date, in days",
        },
    ),
    "v_visit_yield": (
        "The closed loop's yield, per rule, township and month a warning episode began "
        "(an episode: a household firing a rule from its first_flagged_date on): whether "
        "the warnings are verified, what they find, how fast — whether a province's "
        "thresholds are right.",
        {
            "rule_id": "the rule",
            "township": "乡(镇)",
            "month": "YYYYMM of the episode's first_flagged_date",
            "warnings": "warning episodes",
            "verified": "of which visited (any result) on a list of the episode",
            "identified": "of which found 纳入监测",
            "dismissed": "of which dismissed (无需纳入, 不符合条件, 信息有误)",
            "overdue": "of which overdue (逾期) on the latest night they were listed",
            "median_days_to_visit": "median days from first_flagged_date to the first visit, over the verified",
        },
    ),
    "v_record_links_identified": (
        "For the monitoring role only (analysts are refused it): v_record_links with the "
        "record key of each record, as the lists and the review queue need it.",
        {
            "source": "as in v_record_links",
            "source_record_id": "the record key as docs/sources.md defines it: full ID numbers, names",
            "record_pseudonym": "as in v_record_links",
            "event_date": "as in v_record_links",
            "amount": "as in v_record_links",
            "person_id": "人编号",
            "household_id": "户编号",
            "match_status": "as in v_record_links",
            "match_probability": "as in v_record_links",
            "match_method": "as in v_record_links",
        },
    ),
    "v_flagged_households_identified": (
        "For the monitoring role only: v_flagged_households with the evidence naming the "
        "records by their record keys.",
        {
            "household_id": "户编号",
            "rule_id": "as in v_flagged_households",
            "as_of_date": "the run date D",
            "severity": "high, medium, low",
            "first_flagged_date": "as in v_flagged_households",
            "status": "new, continuing, resolved",
            "evidence": "JSON: figures and source_records, the records named by their record keys",
            "assistance": "as in v_flagged_households",
        },
    ),
}


def markdown() -> str:
    lines = [
        "# Guardline warehouse: data dictionary",
        "",
        "Views analysts read, and two for the monitoring role only (`*_identified`). No full ID "
        "number, phone number or name is in an analyst's view; the monitoring role reads them in "
        "the tables and the identified views.",
        "",
    ]
    for view, (what, columns) in DICTIONARY.items():
        lines += [f"## `{view}`", "", what, "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{c}` | {m} |" for c, m in columns.items()]
        lines.append("")
    return "\n".join(lines)
