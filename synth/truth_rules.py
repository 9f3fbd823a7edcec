"""The rules written a second time, from their semantics (docs/rules.md), for the truth.

``truth/flags.csv`` must not be computed by the engine it judges: a rule bug would then
be in the truth too, and no test could see it. This module shares nothing with
``rules/`` but the parameters' values (configuration, not logic): it walks each
household in plain Python — records as dictionaries, dates as ``date`` objects, money
as ``Decimal`` rounded half away from zero — exactly as the page defines the features and
the conditions. It is slow and simple on purpose.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl

CAN_WORK = {"技能劳动力", "普通劳动力"}
CENT = Decimal("0.01")


def yuan(value: Any) -> Decimal:
    """Money as the rules compare it: empty is 0, rounded half away from zero to 0.01 元."""
    if value is None:
        return Decimal(0)
    return Decimal(repr(float(value))).quantize(CENT, rounding=ROUND_HALF_UP)


def within(day: date | None, as_of: date, days: int) -> bool:
    """Dated in (D − days, D]."""
    return day is not None and as_of - timedelta(days=days) < day <= as_of


def month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


@dataclass
class Household:
    head: dict
    members: list[dict]
    settlements: list[dict] = field(default_factory=list)
    disasters: list[dict] = field(default_factory=list)
    assistance: list[dict] = field(default_factory=list)
    events: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    contributions: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))


def _rows(frame: pl.DataFrame | None) -> list[dict]:
    return frame.to_dicts() if frame is not None else []


def households(records: dict[str, pl.DataFrame | None], links: pl.DataFrame) -> dict[str, Household]:
    """Each household with its members and the records matched to them."""
    register = _rows(records["registry"])
    by_household: dict[str, list[dict]] = defaultdict(list)
    for person in register:
        by_household[person["household_id"]].append(person)
    out = {}
    for hid, members in by_household.items():
        heads = [m for m in members if m["relation"] == "户主"]
        head = heads[0] if heads else min(members, key=lambda m: m["person_id"])
        out[hid] = Household(head, members)
    person_household = {p["person_id"]: p["household_id"] for p in register}
    matched = {
        (r["source"], r["source_record_id"]): r["person_id"]
        for r in links.to_dicts()
        if r["match_status"] == "matched" and r["person_id"] in person_household
    }

    def owner(record: dict) -> tuple[str, str] | None:
        person = matched.get((record["source"], record["source_record_id"]))
        return (person, person_household[person]) if person else None

    for name, attribute in (
        ("health_insurance", "settlements"),
        ("emergency_management", "disasters"),
        ("civil_affairs", "assistance"),
    ):
        for record in _rows(records.get(name)):
            found = owner(record)
            if found:
                getattr(out[found[1]], attribute).append(record)
    for name, attribute in (
        ("human_resources.rs_employment_event", "events"),
        ("human_resources.rs_contribution_month", "contributions"),
    ):
        for record in _rows(records.get(name)):
            found = owner(record)
            if found:
                getattr(out[found[1]], attribute)[found[0]].append(record)
    return out


def cancelled(all_settlements: list[dict], as_of: date) -> set[str]:
    """Settlements cancelled by a 冲销 dated on or before D (from every staged record)."""
    return {
        r["original_settlement_id"]
        for r in all_settlements
        if r["settlement_type"] == "冲销" and r["settlement_date"] is not None and r["settlement_date"] <= as_of
    }


def medical_burden(h: Household, gone: set[str], as_of: date) -> Decimal:
    return sum(
        (
            yuan(r["self_pay"]) + yuan(r["self_expense"])
            for r in h.settlements
            if r["settlement_type"] == "正常"
            and within(r["settlement_date"], as_of, 365)
            and r["settlement_id"] not in gone
        ),
        Decimal(0),
    )


def lost_work(events: list[dict], contributions: list[dict], as_of: date) -> tuple[bool, Decimal]:
    """(lost work by (a) or (b), 12 × the mean wage of the paid baseline periods)."""
    registered = [e for e in events if e["event_type"] == "失业登记" and within(e["event_date"], as_of, 180)]
    unemployed = any(
        not any(
            e["event_type"] in ("就业登记", "灵活就业登记") and d["event_date"] <= e["event_date"] <= as_of
            for e in events
            if e["event_date"] is not None
        )
        for d in registered
    )
    now = month_index(as_of.year, as_of.month)
    paid: dict[int, Decimal] = defaultdict(Decimal)
    seen: dict[int, set[str]] = defaultdict(set)
    for c in contributions:
        index = month_index(c["period"] // 100, c["period"] % 100)
        seen[index].add(c["status"])
        if c["status"] == "正常缴费":
            paid[index] += yuan(c["wage_base"])
    baseline = [now - k for k in range(15, 3, -1)]
    recent = [now - k for k in (1, 2, 3)]
    paid_baseline = [paid[i] for i in baseline if "正常缴费" in seen[i]]
    stopped = len(paid_baseline) >= 6 and not any(seen[i] & {"正常缴费", "补缴"} for i in recent)
    wage = 12 * sum(paid_baseline, Decimal(0)) / len(paid_baseline) if paid_baseline else Decimal(0)
    return unemployed or stopped, wage


def flags(
    records: dict[str, pl.DataFrame | None], links: pl.DataFrame, as_of: date, parameters: dict[str, dict]
) -> list[tuple[str, str]]:
    """(household_id, rule_id) of every rule that fires as of D; ``parameters`` by county."""
    gone = cancelled(_rows(records.get("health_insurance")), as_of)
    fired = []
    for hid, h in sorted(households(records, links).items()):
        head = h.head
        p = {k: Decimal(repr(float(v))) for k, v in parameters[head["county"]].items()}
        size = head["household_size"] or len(h.members)
        income = yuan(Decimal(repr(float(head["income_per_capita"] or 0))) * size)
        poor = head["household_type"] == "脱贫户"
        monitored = bool(head["monitored_category"]) and head["risk_eliminated"] == "否"
        line = p["monitoring_line"]
        # medical_burden
        burden = medical_burden(h, gone, as_of)
        absolute = p["medical_abs_poor"] if poor or monitored else p["medical_abs_other"]
        if burden > 0 and (burden >= yuan(absolute) or burden >= yuan(p["medical_share"] * income)):
            fired.append((hid, "medical_burden"))
        # income_drop and below_line share the estimate of tonight's income
        lost, wages = 0, Decimal(0)
        for m in h.members:
            did, wage = lost_work(h.events.get(m["person_id"], []), h.contributions.get(m["person_id"], []), as_of)
            if did:
                lost += 1
                wages += wage
        wages = min(yuan(wages), yuan(head["wage_income"]))
        estimate = max(income - wages, Decimal(0))
        per_capita = yuan(estimate / size)
        floor = yuan((1 - p["income_drop_share"]) * income)
        if lost > 0 and (estimate <= floor or per_capita < yuan(line)):
            fired.append((hid, "income_drop"))
        # disaster_loss: one record's own damage or loss, never a sum
        recent = [r for r in h.disasters if within(r["disaster_date"], as_of, 365)]
        severe = any(r["house_damage"] in ("倒塌", "严重损坏") for r in recent)
        largest = max((yuan(r["direct_loss"]) for r in recent), default=Decimal(0))
        if severe or (largest > 0 and largest >= yuan(p["disaster_share"] * income)):
            fired.append((hid, "disaster_loss"))
        # new_social_assistance
        assisted = [r for r in h.assistance if within(r["approval_date"], as_of, 90)]
        dibao = any(r["change_type"] == "新增" and r["category"] in ("农村低保", "农村特困") for r in assisted)
        temporary = any(r["category"] == "临时救助" for r in assisted)
        if not monitored and (dibao or temporary):
            fired.append((hid, "new_social_assistance"))
        if not monitored and per_capita < yuan(line):
            fired.append((hid, "below_line"))
    return fired
