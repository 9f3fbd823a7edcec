"""The data dictionary for analysts: every view and column they read, in words.

One source: ``DICTIONARY`` below; ``guardline dictionary`` prints it as Markdown and a
test holds it to the views the migrations actually create.
"""

from __future__ import annotations

DICTIONARY: dict[str, tuple[str, dict[str, str]]] = {
    "v_record_links": (
        "One row per department record (its latest version): who it is about.",
        {
            "source": "civil_affairs, health_insurance, emergency_management, human_resources",
            "source_record_id": "the record key of contracts/SOURCES.md, as text",
            "person_id": "人编号 of the register, null when unmatched",
            "household_id": "户编号 of the register, null when unmatched",
            "match_status": "matched, review (a person must decide), unmatched",
            "match_probability": "0..1, the model's probability for the chosen (or best) candidate",
            "match_method": "exact id, probabilistic, reviewed, needs review, no candidate…",
        },
    ),
    "v_flagged_households": (
        "The latest night's flags: one row per household and rule that fired (new or "
        "continuing) or stopped firing (resolved).",
        {
            "household_id": "户编号",
            "rule_id": "medical_burden, income_drop, disaster_loss, new_social_assistance, below_line",
            "as_of_date": "the run date D",
            "severity": "high, medium, low",
            "first_flagged_date": "when this household first fired this rule in the current episode",
            "status": "new (first night), continuing, resolved (stopped firing tonight)",
            "evidence": "JSON: figures (the values and thresholds that fired the rule) and source_records",
            "assistance": "suggested help: 兜底保障 / 就业帮扶 / 产业帮扶 / 医疗救助 / 住房救助",
        },
    ),
    "v_exit_candidates": (
        "Monitored households that may be proposed for exit (有序退出) as of the latest night.",
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
            "id_pseudonym": "HMAC-SHA256 of the ID number (20 hex characters), stable across runs under one key",
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
        "Households to visit in the latest night, by township, rule and severity.",
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
}


def markdown() -> str:
    lines = [
        "# Guardline warehouse: data dictionary",
        "",
        "Views analysts read. Full ID and phone numbers are not in them; the monitoring role reads the "
        "tables `persons` and `households` for those.",
        "",
    ]
    for view, (what, columns) in DICTIONARY.items():
        lines += [f"## `{view}`", "", what, "", "| column | meaning |", "|---|---|"]
        lines += [f"| `{c}` | {m} |" for c, m in columns.items()]
        lines.append("")
    return "\n".join(lines)
