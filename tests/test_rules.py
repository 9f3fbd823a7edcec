"""Rules: every threshold and window edge of docs/rules.md, overrides, lifecycle."""

from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest

from connectors.ingest import ingest
from guardline.errors import GuardlineError
from matching.run import match_stage
from rules.catalogue import Catalogue
from rules.evaluate import flag_metrics
from rules.features import Inputs
from rules.lifecycle import lifecycle
from rules.run import compute, flag_stage
from staging.stage import Stage
from tests.conftest import AS_OF

D = date(2026, 11, 27)


class World:
    """A hand-built county: households, members and matched records, written out."""

    def __init__(self) -> None:
        self.persons: list[dict] = []
        self.rows: dict[str, list[dict]] = {
            k: [] for k in ("health", "civil", "disaster", "employment", "contributions")
        }
        self.links: list[dict] = []
        self.n = 0

    def household(
        self,
        hid: str,
        *,
        kind: str = "一般农户",
        per_capita: float = 30_000,
        size: int = 2,
        wage: float = 20_000,
        monitored: bool = False,
        identified: int | None = None,
        labour: tuple[str, ...] = ("普通劳动力", "普通劳动力"),
        county: str = "花垣县",
    ) -> list[str]:
        ids = []
        for i in range(size):
            pid = f"{hid}-{i}"
            ids.append(pid)
            self.persons.append(
                {
                    "person_id": pid,
                    "household_id": hid,
                    "county": county,
                    "township": "双龙镇",
                    "village": "十八洞村",
                    "name": f"人{pid}",
                    "id_number": None,
                    "sex": "男",
                    "relation": "户主" if i == 0 else "之子",
                    "labour": labour[i] if i < len(labour) else "无劳动力",
                    "household_type": kind,
                    "monitored_category": "边缘易致贫户" if monitored else None,
                    "risk_eliminated": "否" if monitored else None,
                    "identified_month": identified,
                    "household_size": size,
                    "income_per_capita": per_capita,
                    "wage_income": wage,
                    "business_income": 0.0,
                }
            )
        return ids

    def _record(self, table: str, source: str, person: str | None, match: str = "matched", **values) -> str:
        self.n += 1
        key = f"{table}-{self.n}"
        self.rows[table].append({"source_record_id": key, **values})
        hid = None if person is None else person.rsplit("-", 1)[0]
        self.links.append(
            {
                "source": source,
                "source_record_id": key,
                "person_id": person,
                "household_id": hid,
                "match_status": match,
            }
        )
        return key

    def settlement(
        self,
        person,
        burden: float,
        day: date,
        kind: str = "正常",
        original: str | None = None,
        status: str = "matched",
        settlement_id: str | None = None,
    ) -> str:
        sid = settlement_id or f"JS{self.n + 1}"
        self._record(
            "health",
            "health_insurance",
            person,
            status,
            settlement_id=sid,
            settlement_type=kind,
            original_settlement_id=original,
            settlement_date=day,
            self_pay=burden * 0.6,
            self_expense=burden * 0.4,
        )
        return sid

    def assistance(self, person, category: str, change: str, day: date) -> str:
        return self._record(
            "civil", "civil_affairs", person, category=category, change_type=change, approval_date=day
        )

    def disaster(self, person, damage: str, loss: float, day: date) -> str:
        return self._record(
            "disaster",
            "emergency_management",
            person,
            house_damage=damage,
            direct_loss=loss,
            disaster_date=day,
        )

    def event(self, person, kind: str, day: date) -> str:
        return self._record("employment", "human_resources", person, event_type=kind, event_date=day)

    def contribution(self, person, months_back: int, wage: float = 3000, status: str = "正常缴费") -> str:
        index = D.year * 12 + D.month - 1 - months_back
        return self._record(
            "contributions",
            "human_resources",
            person,
            period=(index // 12) * 100 + index % 12 + 1,
            wage_base=wage,
            status=status,
        )

    def paid(self, person, months: range, wage: float = 3000) -> None:
        for m in months:
            self.contribution(person, m, wage)

    def inputs(self) -> Inputs:
        schemas = {
            "health": {
                "source_record_id": pl.String,
                "settlement_id": pl.String,
                "settlement_type": pl.String,
                "original_settlement_id": pl.String,
                "settlement_date": pl.Date,
                "self_pay": pl.Float64,
                "self_expense": pl.Float64,
            },
            "civil": {
                "source_record_id": pl.String,
                "category": pl.String,
                "change_type": pl.String,
                "approval_date": pl.Date,
            },
            "disaster": {
                "source_record_id": pl.String,
                "house_damage": pl.String,
                "direct_loss": pl.Float64,
                "disaster_date": pl.Date,
            },
            "employment": {"source_record_id": pl.String, "event_type": pl.String, "event_date": pl.Date},
            "contributions": {
                "source_record_id": pl.String,
                "period": pl.Int64,
                "wage_base": pl.Float64,
                "status": pl.String,
            },
        }
        frames = {
            k: pl.DataFrame(v, schema=schemas[k], orient="row") if v else pl.DataFrame(schema=schemas[k])
            for k, v in self.rows.items()
        }
        register = pl.DataFrame(
            self.persons,
            schema_overrides={
                "identified_month": pl.Int64,
                "id_number": pl.String,
                "monitored_category": pl.String,
                "risk_eliminated": pl.String,
            },
        )
        links = pl.DataFrame(
            self.links,
            schema={
                "source": pl.String,
                "source_record_id": pl.String,
                "person_id": pl.String,
                "household_id": pl.String,
                "match_status": pl.String,
            },
        )
        return Inputs(
            register,
            links,
            frames["health"],
            frames["civil"],
            frames["disaster"],
            frames["employment"],
            frames["contributions"],
        )

    def flags(self, as_of: date = D, catalogue: Catalogue | None = None) -> dict[tuple[str, str], dict]:
        _, flags, _ = compute(self.inputs(), as_of, catalogue)
        return {(r["household_id"], r["rule_id"]): r for r in flags.iter_rows(named=True)}


def ago(n: int) -> date:
    return D - timedelta(days=n)


def test_medical_burden_thresholds_by_household_type_and_share():
    w = World()
    poor = w.household("poor", kind="脱贫户", per_capita=30_000)
    w.settlement(poor[0], 5_000, ago(10))
    short = w.household("poor_short", kind="脱贫户", per_capita=30_000)
    w.settlement(short[0], 4_999.99, ago(10))
    other = w.household("other", per_capita=30_000)  # income 60,000: abs 20,000, share 30,000
    w.settlement(other[0], 19_999.99, ago(10))
    at_abs = w.household("other_abs", per_capita=30_000)
    w.settlement(at_abs[0], 20_000, ago(10))
    share = w.household("share", per_capita=5_000)  # income 10,000: half is 5,000 < 20,000
    w.settlement(share[0], 5_000, ago(10))
    share_short = w.household("share_short", per_capita=5_000)
    w.settlement(share_short[0], 4_999.99, ago(10))
    flags = w.flags()
    assert ("poor", "medical_burden") in flags and ("poor_short", "medical_burden") not in flags
    assert ("other", "medical_burden") not in flags and ("other_abs", "medical_burden") in flags
    assert ("share", "medical_burden") in flags and ("share_short", "medical_burden") not in flags
    assert flags[("share", "medical_burden")]["severity"] == "medium"
    assert flags[("poor", "medical_burden")]["assistance"] == "医疗救助"
    evidence = json.loads(flags[("poor", "medical_burden")]["evidence"])
    assert evidence["figures"]["medical_abs"] == 5000 and len(evidence["source_records"]) == 1
    assert flags[("poor", "medical_burden")]["sentence"] == (
        "近12个月医疗个人负担 5,000 元,占家庭年收入 8%(预警标准:脱贫户或监测户 5,000 元,或家庭年收入的 50% 即 30,000 元)"
    ), "the threshold that fired is told with its basis"


def test_medical_window_edges_reversals_and_unmatched_records():
    w = World()
    edge = w.household("edge", kind="脱贫户")
    w.settlement(edge[0], 3_000, ago(364))
    w.settlement(edge[0], 2_000, D)  # day 0 counts: 5,000
    out = w.household("out", kind="脱贫户")
    w.settlement(out[0], 3_000, ago(365))  # exactly 365 days before: outside
    w.settlement(out[0], 2_000, D)
    w.settlement(out[0], 9_000, D + timedelta(days=1))  # after D: ignored
    reversed_ = w.household("reversed", kind="脱贫户")
    sid = w.settlement(reversed_[0], 6_000, ago(40))
    w.settlement(None, -6_000, ago(30), kind="冲销", original=sid, status="unmatched")
    late = w.household("late_reversal", kind="脱贫户")
    sid = w.settlement(late[0], 6_000, ago(40))
    w.settlement(late[0], -6_000, D + timedelta(days=2), kind="冲销", original=sid)
    orphan = w.household("orphan", kind="脱贫户")
    w.settlement(orphan[0], 6_000, ago(40))
    w.settlement(orphan[0], -6_000, ago(30), kind="冲销", original="JS-NOWHERE")
    review = w.household("review", kind="脱贫户")
    w.settlement(review[0], 9_000, ago(40), status="review")
    flags = w.flags()
    assert ("edge", "medical_burden") in flags
    assert ("out", "medical_burden") not in flags
    assert ("reversed", "medical_burden") not in flags
    assert ("late_reversal", "medical_burden") in flags
    assert ("orphan", "medical_burden") in flags
    assert ("review", "medical_burden") not in flags


def test_income_drop_by_registration_and_by_stopped_contributions():
    w = World()
    a = w.household(
        "a179", per_capita=10_000, wage=36_000
    )  # income 20,000; lost wage 36,000 capped at 36,000
    w.paid(a[0], range(4, 16))
    w.event(a[0], "失业登记", ago(179))
    a180 = w.household("a180", per_capita=10_000, wage=36_000)
    w.paid(a180[0], range(4, 16))
    w.contribution(a180[0], 1)  # still paying recently: (b) not met either
    w.event(a180[0], "失业登记", ago(180))
    rehired = w.household("rehired", per_capita=10_000, wage=36_000)
    w.event(rehired[0], "失业登记", ago(60))
    w.event(rehired[0], "灵活就业登记", ago(20))
    w.paid(rehired[0], range(1, 16))
    b6 = w.household("b6", per_capita=10_000, wage=36_000)
    w.paid(b6[0], range(4, 10))  # 6 of the 12 baseline periods, nothing since
    b5 = w.household("b5", per_capita=10_000, wage=36_000)
    w.paid(b5[0], range(4, 9))
    backpay = w.household("backpay", per_capita=10_000, wage=36_000)
    w.paid(backpay[0], range(4, 16))
    w.contribution(backpay[0], 1, status="补缴")
    flags = w.flags()
    assert ("a179", "income_drop") in flags and ("a180", "income_drop") not in flags
    assert ("rehired", "income_drop") not in flags
    assert ("b6", "income_drop") in flags and ("b5", "income_drop") not in flags
    assert ("backpay", "income_drop") not in flags
    assert flags[("b6", "income_drop")]["severity"] == "high", "est income 0 per person is under the line"
    assert flags[("b6", "income_drop")]["assistance"] == "就业帮扶", "the other member can work"


def test_income_drop_share_edge_and_assistance_when_nobody_else_can_work():
    w = World()
    # income 100,000; lost wage 12 × 2,500 = 30,000: est 70,000 = (1 − 0.3) × income: fires (≤).
    edge = w.household("edge", per_capita=50_000, wage=40_000, labour=("普通劳动力", "丧失劳动力"))
    w.paid(edge[0], range(4, 16), wage=2_500)
    above = w.household("above", per_capita=50_000, wage=40_000)
    w.paid(above[0], range(4, 16), wage=2_499.99)
    flags = w.flags()
    assert ("edge", "income_drop") in flags and ("above", "income_drop") not in flags
    assert flags[("edge", "income_drop")]["severity"] == "medium"
    assert flags[("edge", "income_drop")]["assistance"] == "兜底保障"


def test_disaster_single_record_damage_and_share():
    w = World()
    collapsed = w.household("collapsed")
    w.disaster(collapsed[0], "倒塌", 0, ago(100))
    loss = w.household("loss", per_capita=10_000)  # income 20,000: 30% is 6,000
    w.disaster(loss[0], "未受损", 6_000, ago(100))
    short = w.household("short", per_capita=10_000)
    w.disaster(short[0], "一般损坏", 5_999.99, ago(100))
    summed = w.household("summed", per_capita=10_000)
    w.disaster(summed[0], "一般损坏", 4_000, ago(100))
    w.disaster(summed[0], "一般损坏", 4_000, ago(200))
    old = w.household("old")
    w.disaster(old[0], "倒塌", 90_000, ago(365))
    housing = w.household("housing", per_capita=10_000)
    w.disaster(housing[0], "一般损坏", 7_000, ago(10))
    flags = w.flags()
    assert flags[("collapsed", "disaster_loss")]["severity"] == "high"
    assert flags[("collapsed", "disaster_loss")]["assistance"] == "住房救助"
    assert flags[("loss", "disaster_loss")]["severity"] == "medium"
    assert flags[("loss", "disaster_loss")]["assistance"] == "产业帮扶"
    assert flags[("housing", "disaster_loss")]["assistance"] == "住房救助"
    for hid in ("short", "summed", "old"):
        assert (hid, "disaster_loss") not in flags, hid


def test_disaster_evidence_tells_each_fired_record_with_its_own_figures():
    """A house 严重损坏 with no loss beside another record's loss below the threshold: the
    flag tells the damaged record alone — never the other's loss as if it were its own."""
    w = World()
    home = w.household("mixed", per_capita=10_000)  # income 20,000: the threshold is 6,000
    damaged = w.disaster(home[0], "严重损坏", 0, ago(30))
    w.disaster(home[0], "未受损", 2_500, ago(20))
    both = w.household("both", per_capita=10_000)
    first = w.disaster(both[0], "倒塌", 90_000, date(2026, 7, 12))
    second = w.disaster(both[0], "未受损", 7_000, date(2026, 9, 1))
    flags = w.flags()
    mixed = flags[("mixed", "disaster_loss")]
    evidence = json.loads(mixed["evidence"])
    assert evidence["source_records"] == [damaged]
    assert evidence["record_figures"] == [{"disaster_date": str(ago(30)), "house_damage": "严重损坏", "direct_loss": 0.0}]
    assert evidence["figures"]["disaster_loss_threshold"] == 6000 and "disaster_amount" not in evidence["figures"]
    standard = "(预警标准:房屋倒塌或严重损坏,或单次直接经济损失达家庭年收入的 30% 即 {:,} 元)"
    assert mixed["sentence"] == f"近12个月受灾:{ago(30)} 房屋严重损坏" + standard.format(6000)
    told = flags[("both", "disaster_loss")]
    order = sorted([(first, "2026-07-12 房屋倒塌,直接经济损失 90,000 元"), (second, "2026-09-01 直接经济损失 7,000 元")])
    assert json.loads(told["evidence"])["source_records"] == [k for k, _ in order]
    threshold = json.loads(told["evidence"])["figures"]["disaster_loss_threshold"]
    assert told["sentence"] == "近12个月受灾:" + "; ".join(words for _, words in order) + standard.format(round(threshold))


def test_new_social_assistance_window_and_kinds():
    w = World()
    cases = {
        "d89": ("农村低保", "新增", 89),
        "d90": ("农村低保", "新增", 90),
        "adjust": ("农村低保", "调整", 10),
        "temp": ("临时救助", "调整", 10),
        "tekun": ("农村特困", "新增", 0),
        "subsidy": ("困难残疾人生活补贴", "新增", 5),
    }
    for hid, (category, change, days) in cases.items():
        w.assistance(w.household(hid)[0], category, change, ago(days))
    monitored = w.household("monitored", monitored=True, identified=202501)
    w.assistance(monitored[0], "农村低保", "新增", ago(5))
    flags = w.flags()
    fired = {h for h, r in flags if r == "new_social_assistance"}
    assert fired == {"d89", "temp", "tekun"}
    assert flags[("temp", "new_social_assistance")]["severity"] == "low"
    assert flags[("d89", "new_social_assistance")]["severity"] == "medium"


def test_below_line_and_exit_candidates():
    w = World()
    w.household("under", per_capita=8_699.99)
    w.household("at", per_capita=8_700)
    w.household("nobody_works", per_capita=5_000, labour=("丧失劳动力", "无劳动力"))
    w.household("monitored_low", per_capita=5_000, monitored=True, identified=202501)
    w.household("ready", per_capita=12_000, monitored=True, identified=202605)  # 6 months before 2026-11
    w.household("too_soon", per_capita=12_000, monitored=True, identified=202606)
    w.household(
        "cannot_work", per_capita=12_000, monitored=True, identified=202501, labour=("丧失劳动力", "无劳动力")
    )
    _, flags, exits = compute(w.inputs(), D)
    fired = {(h, r) for h, r in flags.select("household_id", "rule_id").iter_rows()}
    assert ("under", "below_line") in fired and ("at", "below_line") not in fired
    assert ("monitored_low", "below_line") not in fired
    assistance = dict(
        flags.filter(pl.col("rule_id") == "below_line").select("household_id", "assistance").iter_rows()
    )
    assert assistance == {"under": "产业帮扶", "nobody_works": "兜底保障"}
    assert exits["household_id"].to_list() == ["ready"]


def test_overrides_by_province_county_and_year(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "province: 湖南省\nprovinces:\n  湖南省: {monitoring_line: {2026: 9000, default: 8700}}\n"
        "counties:\n  凤凰县: {monitoring_line: 9500, medical_abs_other: 10000}\n",
        encoding="utf-8",
    )
    catalogue = Catalogue.load(config=config)
    w = World()
    w.household("h", per_capita=8_800)
    w.household("f", per_capita=9_400, county="凤凰县")
    f2 = w.household("f2", county="凤凰县")
    w.settlement(f2[0], 10_000, ago(3))
    assert set(w.flags(D, catalogue)) == {("h", "below_line"), ("f", "below_line"), ("f2", "medical_burden")}
    assert set(w.flags(date(2025, 11, 27), catalogue)) >= {("f", "below_line")}
    assert ("h", "below_line") not in w.flags(date(2025, 11, 27), catalogue), "2025 falls back to the default"


@pytest.mark.parametrize(
    "mistake, words",
    [
        ('condition: "medical_burdn > 0"', "medical_burdn"),
        ('condition: "medical_burden >= = 1"', "not a valid expression"),
        ('condition: "medical_burden > missing_param"', "missing_param"),
    ],
)
def test_a_bad_catalogue_is_refused_naming_the_rule(tmp_path, mistake, words):
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "parameters: {monitoring_line: 8700}\nrules:\n  - id: my_rule\n    name: 测试\n"
        f"    {mistake}\n    severity: \"'high'\"\n    assistance: \"'兜底保障'\"\n",
        encoding="utf-8",
    )
    with pytest.raises(GuardlineError, match="rule my_rule") as err:
        Catalogue.load(path)
    assert words in str(err.value)


def test_unknown_parameter_in_configuration_is_refused(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("provinces:\n  湖南省: {monitoring_lien: 9000}\n", encoding="utf-8")
    with pytest.raises(GuardlineError, match="monitoring_lien"):
        Catalogue.load(config=config)


def test_lifecycle_over_three_nights():
    def fired(*pairs):
        return pl.DataFrame(
            [{"household_id": h, "rule_id": r, "severity": "high"} for h, r in pairs],
            schema={"household_id": pl.String, "rule_id": pl.String, "severity": pl.String},
        )

    n1, n2, n3 = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)
    one = lifecycle(fired(("A", "x"), ("B", "x")), None, n1)
    assert set(one["status"]) == {"new"}
    two = lifecycle(fired(("B", "x"), ("C", "x")), one, n2)
    by = {r["household_id"]: r for r in two.iter_rows(named=True)}
    assert (
        by["A"]["status"] == "resolved" and by["B"]["status"] == "continuing" and by["C"]["status"] == "new"
    )
    assert by["B"]["first_flagged_date"] == n1 and by["C"]["first_flagged_date"] == n2
    assert lifecycle(fired(("B", "x"), ("C", "x")), one, n2).equals(two), "re-running a night changes nothing"
    three = lifecycle(fired(), two, n3)
    assert {r["household_id"]: r["status"] for r in three.iter_rows(named=True)} == {
        "B": "resolved",
        "C": "resolved",
    }


@pytest.fixture(scope="module")
def flagged(county, tmp_path_factory):
    stage = Stage(tmp_path_factory.mktemp("flagstage"))
    ingest(county.out / "inbox", AS_OF, stage.root)
    match_stage(stage, AS_OF)
    return county, stage, flag_stage(stage, AS_OF)


@pytest.fixture(scope="module")
def default_night(tmp_path_factory):
    """The default synthetic county (10,000 households, default noise) through the night."""
    from synth.generate import generate

    county = generate(tmp_path_factory.mktemp("default_county"), as_of=AS_OF)
    stage = Stage(tmp_path_factory.mktemp("default_stage"))
    ingest(county.out / "inbox", AS_OF, stage.root)
    match_stage(stage, AS_OF)
    return county, stage, flag_stage(stage, AS_OF)


def test_flags_on_the_default_synthetic_county_match_the_truth(default_night):
    county, _, result = default_night
    truth = pl.read_csv(county.out / "truth" / "flags.csv", infer_schema=False)
    assert set(truth["rule_id"]) == {
        "medical_burden",
        "income_drop",
        "disaster_loss",
        "new_social_assistance",
        "below_line",
    }
    m = flag_metrics(result.flags, truth)
    assert m.precision >= 0.99 and m.recall >= 0.99, m


@pytest.mark.parametrize("seed", [2, 13])
def test_the_engine_and_the_rules_written_a_second_time_agree_on_the_true_links(seed, tmp_path):
    """truth/flags.csv comes from synth/truth_rules.py, written from docs/rules.md apart from
    the engine: on the true links the engine raises exactly those flags, no more, no fewer."""
    from connectors.ingest import read_inbox
    from rules.run import compute, inputs_from
    from synth.generate import generate
    from synth.truth_files import true_links

    county = generate(tmp_path, households=1500, seed=seed, as_of=AS_OF)
    records = read_inbox(county.out / "inbox", AS_OF)
    links = true_links(county.out / "truth", records["registry"])
    _, engine, _ = compute(inputs_from(records, links), AS_OF)
    truth = pl.read_csv(county.out / "truth" / "flags.csv", infer_schema=False)
    assert truth.height > 50 and truth["rule_id"].n_unique() == 5
    assert set(engine.select("household_id", "rule_id").iter_rows()) == set(truth.iter_rows())


def test_every_planted_near_miss_stays_unflagged(flagged):
    county, _, result = flagged
    shocks = pl.read_csv(county.out / "truth" / "shocks.csv", infer_schema=False)
    fired = result.flags.select("household_id", "rule_id").with_columns(pl.lit(True).alias("fired"))
    joined = shocks.join(fired, on=["household_id", "rule_id"], how="left")
    near = joined.filter(pl.col("expected") == "near_miss")
    assert near["fired"].is_null().all(), near.filter(pl.col("fired").is_not_null())
    fires = joined.filter(pl.col("expected") == "fires")
    assert fires["fired"].is_not_null().mean() >= 0.97


def test_flag_run_is_kept_by_date_and_rerun_is_identical(flagged):
    _, stage, result = flagged
    again = flag_stage(stage, AS_OF)
    assert again.flags.equals(result.flags)
    match_stage(stage, AS_OF + timedelta(days=1))
    later = flag_stage(stage, AS_OF + timedelta(days=1))
    assert set(later.flags["status"]) <= {"continuing", "new", "resolved"}
    assert (later.flags.filter(pl.col("status") == "continuing")["first_flagged_date"] == AS_OF).all()
