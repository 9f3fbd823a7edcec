"""No identity outside the monitoring role: every view and column an analyst can read is
scanned for ID numbers, phones and register names, on DuckDB and on PostgreSQL logged
in as the analyst; the files a night writes are its owner's alone; validation results
hold no identifier; the pseudonym key is strong and never changes unnoticed; a
monitoring login can be limited to its county and township."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from guardline import idnumber
from pipeline.cli import invoke
from synth.generate import generate
from tests.conftest import AS_OF
from warehouse.roles import ANALYST, MONITOR, create_roles, create_scoped_login
from warehouse.schema import ANALYST_VIEWS

KEY = "a-test-secret-of-enough-length"
ID18 = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
ID15 = re.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", KEY)


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("privacy"), households=300, seed=21, as_of=AS_OF).out / "inbox"


@pytest.fixture(scope="module")
def refused_but_one(county, tmp_path_factory) -> Path:
    """The same county where every department's delivery is refused: only the register reads."""
    inbox = tmp_path_factory.mktemp("refused") / "inbox"
    shutil.copytree(county / "registry", inbox / "registry")
    for source, name in (
        ("civil_affairs", "mz_changes_202611.xlsx"),
        ("health_insurance", "yb_settlement_202611.csv"),
        ("emergency_management", "yj_2026ZH001.xlsx"),
    ):
        (inbox / source).mkdir()
        (inbox / source / name).write_bytes(b"\x00\x01garbage, not a delivery")
    (inbox / "human_resources").mkdir()
    sa.create_engine(f"sqlite:///{inbox / 'human_resources' / 'exchange.sqlite'}").connect().close()
    return inbox


def _night(inbox: Path, home: Path, url: str) -> int:
    return invoke(
        [
            "run",
            "--inbox",
            str(inbox),
            "--as-of",
            AS_OF.isoformat(),
            "--stage",
            str(home / "stage"),
            "--outbox",
            str(home / "outbox"),
            "--warehouse",
            url,
        ]
    )


def _identities(cell: object, names: set[str]) -> list[str]:
    """What in a cell is an identity: a checksum-valid 18-character ID, a 15-digit ID with
    a real birth date, a mobile number, or a register name (the cell, or a string inside
    its JSON)."""
    if cell is None or not isinstance(cell, str):
        return []
    found = [m for m in ID18.findall(cell) if idnumber.is_valid(m.upper())]
    for m in ID15.findall(cell):
        try:
            idnumber.birth_date(idnumber.from_legacy15(m))
            found.append(m)
        except ValueError:
            pass
    found += MOBILE.findall(cell)
    strings = {cell}
    if cell[:1] in "[{":
        with contextlib.suppress(ValueError):
            strings |= set(_strings(json.loads(cell)))
    found += sorted(s for s in strings if s in names)
    return found


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _scan(conn: sa.Connection, relations: list[str], names: set[str]) -> tuple[int, dict[str, list[str]]]:
    """Cells scanned, and what was found per relation.column."""
    cells, found = 0, {}
    for relation in relations:
        result = conn.execute(sa.text(f"SELECT * FROM {relation}"))
        columns = list(result.keys())
        for row in result:
            for column, value in zip(columns, row, strict=True):
                cells += 1
                hits = _identities(value if isinstance(value, str) else str(value) if value is not None else None, names)
                if hits:
                    found.setdefault(f"{relation}.{column}", []).extend(hits[:3])
    return cells, found


def _names(stage: Path) -> set[str]:
    from staging.stage import Stage

    return set(Stage(stage).versions("registry")["name"].drop_nulls())


@pytest.mark.parametrize("which", ["default", "refused_but_one"])
def test_analysts_views_on_duckdb_hold_no_identity(which, request, tmp_path):
    inbox = request.getfixturevalue("county" if which == "default" else "refused_but_one")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert _night(inbox, tmp_path, url) == (0 if which == "default" else 3)
    eng = sa.create_engine(url)
    with eng.connect() as c:
        cells, found = _scan(c, list(ANALYST_VIEWS), _names(tmp_path / "stage"))
        # The same rows hold identities where the monitoring role reads them.
        keys = c.execute(sa.text("SELECT source_record_id FROM v_record_links_identified")).scalars().all()
    eng.dispose()
    assert found == {}, found
    assert cells > (10_000 if which == "default" else 1_000), cells
    if which == "default":
        assert sum(bool(ID18.search(k)) for k in keys) > 100


@pytest.fixture
def pg_schema(pg_url):
    schema = f"priv_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{pg_url}?options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def _as(url: str, role: str) -> sa.Engine:
    return sa.create_engine(sa.make_url(url).set(username=role))


@pytest.mark.parametrize("which", ["default", "refused_but_one"])
def test_the_analyst_on_postgresql_reads_no_identity_and_the_monitor_what_the_lists_need(
    which, request, tmp_path, pg_schema
):
    inbox = request.getfixturevalue("county" if which == "default" else "refused_but_one")
    assert _night(inbox, tmp_path, pg_schema) == (0 if which == "default" else 3)
    create_roles(sa.create_engine(pg_schema))
    analyst = _as(pg_schema, ANALYST)
    with analyst.connect() as c:
        readable = c.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND has_table_privilege(current_user, quote_ident(table_schema) || '.' || "
                "quote_ident(table_name), 'SELECT') ORDER BY table_name"
            )
        ).scalars().all()
        assert sorted(readable) == sorted(ANALYST_VIEWS), "the analyst reads the documented views only"
        cells, found = _scan(c, readable, _names(tmp_path / "stage"))
    analyst.dispose()
    assert found == {}, found
    assert cells > (10_000 if which == "default" else 1_000)
    monitor = _as(pg_schema, MONITOR)
    with monitor.connect() as c:
        ids = c.execute(sa.text("SELECT id_number FROM persons")).scalars().all()
        phones = c.execute(sa.text("SELECT phone FROM households WHERE phone IS NOT NULL")).scalars().all()
        names = c.execute(sa.text("SELECT name FROM persons")).scalars().all()
        assert sum(idnumber.is_valid(i or "") for i in ids) > 0.9 * len(ids) and phones and names
        if which == "default":
            evidence = c.execute(sa.text("SELECT evidence FROM v_flagged_households_identified")).scalars().all()
            assert any(ID18.search(e) for e in evidence), "the monitor reads the records behind a flag"
    monitor.dispose()


def test_what_a_night_writes_is_its_owners_alone_whatever_the_umask(county, tmp_path):
    previous = os.umask(0o022)
    try:
        assert _night(county, tmp_path / "home", f"duckdb:///{tmp_path / 'home' / 'w.duckdb'}") == 0
    finally:
        os.umask(previous)
    checked = 0
    for path in (tmp_path / "home").rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        checked += 1
    kinds = {p.suffix for p in (tmp_path / "home").rglob("*") if p.is_file()}
    assert {".parquet", ".json", ".html", ".xlsx", ".csv", ".duckdb"} <= kinds, kinds
    assert checked > 50


def test_validation_results_and_data_docs_hold_no_identifier(county, tmp_path):
    # A delivery whose keys repeat and whose IDs are mostly invalid: the checks that fail
    # would show the values that missed, if the results kept them.
    inbox = tmp_path / "inbox"
    shutil.copytree(county, inbox)
    hi = sorted((inbox / "health_insurance").glob("*.csv"))[-1]
    lines = hi.read_bytes().decode("gbk").splitlines()
    bad = [lines[0]] + [",".join(["DUP1", *line.split(",")[1:]]) for line in lines[1:60]]
    (inbox / "health_insurance" / "yb_settlement_209901.csv").write_bytes(("\r\n".join(bad) + "\r\n").encode("gbk"))
    assert _night(inbox, tmp_path / "home", f"duckdb:///{tmp_path / 'home' / 'w.duckdb'}") == 3
    names = _names(tmp_path / "home" / "stage")
    reports = tmp_path / "home" / "stage" / "reports"
    files = [p for p in reports.rglob("*") if p.is_file() and p.suffix in (".json", ".html")]
    assert any("yb_settlement_209901" in p.name for p in files)
    for path in files:
        text = path.read_text("utf-8", errors="replace")
        hits = [m for m in ID18.findall(text) if idnumber.is_valid(m.upper())] + MOBILE.findall(text)
        hits += [n for n in names if len(n) >= 2 and f'"{n}"' in text]
        assert not hits, (path, hits[:3])


@pytest.mark.parametrize("key", [" " * 16, "a b c d e f g h i j k l m n o", "x" * 40, "short"])
def test_a_weak_pseudonym_key_is_refused(key, county, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", key)
    assert _night(county, tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}") == 2
    assert "too weak" in capsys.readouterr().err
    assert not (tmp_path / "stage").exists(), "refused before any work"


def test_a_change_of_key_is_refused_unless_asked_for(county, tmp_path, monkeypatch, capsys):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert _night(county, tmp_path, url) == 0
    eng = sa.create_engine(url)
    with eng.connect() as c:
        before = dict(c.execute(sa.text("SELECT person_id, id_pseudonym FROM v_persons_masked")).all())
    eng.dispose()
    monkeypatch.setenv("GUARDLINE_PSEUDONYM_KEY", "another-secret-of-enough-length")
    capsys.readouterr()
    assert _night(county, tmp_path, url) == 2
    err = capsys.readouterr().err
    assert "not the one this warehouse was built with" in err and "--rekey" in err
    assert invoke(
        ["run", "--inbox", str(county), "--as-of", AS_OF.isoformat(), "--stage", str(tmp_path / "stage"),
         "--outbox", str(tmp_path / "outbox"), "--warehouse", url, "--rekey"]
    ) == 0
    eng = sa.create_engine(url)
    with eng.connect() as c:
        after = dict(c.execute(sa.text("SELECT person_id, id_pseudonym FROM v_persons_masked")).all())
        links = set(c.execute(sa.text("SELECT record_pseudonym FROM v_record_links")).scalars())
        named = {
            r
            for e in c.execute(sa.text("SELECT evidence FROM flags")).scalars()
            for r in json.loads(e)["source_records"]
        }
        evidence = {
            r
            for e in c.execute(sa.text("SELECT evidence FROM v_flagged_households")).scalars()
            for r in json.loads(e)["source_records"]
        }
    eng.dispose()
    assert after.keys() == before.keys() and all(after[p] != before[p] for p in before if before[p])
    assert evidence and evidence <= links, "the evidence names records by their new pseudonyms"
    assert named and not named & links


def test_a_scoped_monitoring_login_sees_its_own_households_only(county, tmp_path, pg_schema):
    assert _night(county, tmp_path, pg_schema) == 0
    owner = sa.create_engine(pg_schema)
    with owner.connect() as c:
        townships = c.execute(
            sa.text("SELECT township, count(*) FROM households GROUP BY township ORDER BY 2 DESC")
        ).all()
        mine = townships[0][0]
        total = c.execute(sa.text("SELECT count(*) FROM households")).scalar()
    login = f"gl_cadre_{uuid.uuid4().hex[:8]}"
    elsewhere = f"gl_other_{uuid.uuid4().hex[:8]}"
    create_scoped_login(owner, login, "433124", mine)
    create_scoped_login(owner, elsewhere, "433125")
    try:
        cadre = _as(pg_schema, login)
        with cadre.connect() as c:
            seen = c.execute(sa.text("SELECT DISTINCT township FROM households")).scalars().all()
            assert seen == [mine]
            own = set(c.execute(sa.text("SELECT household_id FROM households")).scalars())
            assert 0 < len(own) < total
            for table in ("persons", "flags", "record_links", "exit_candidates"):
                ids = set(c.execute(sa.text(f"SELECT household_id FROM {table}")).scalars())
                assert ids <= own, table
            assert c.execute(sa.text("SELECT count(*) FROM persons")).scalar() > 0
        for relation in ("source_records", "quarantine", "v_record_links", "v_record_links_identified"):
            with cadre.connect() as c, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                c.execute(sa.text(f"SELECT * FROM {relation}"))
        cadre.dispose()
        other = _as(pg_schema, elsewhere)
        with other.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM households")).scalar() == 0
            assert c.execute(sa.text("SELECT count(*) FROM persons")).scalar() == 0
        other.dispose()
        # The night itself (etl, unscoped) still loads every household: run it again as etl.
        from warehouse.roles import ETL

        etl_url = sa.make_url(pg_schema).set(username=ETL).render_as_string(hide_password=False)
        assert _night(county, tmp_path, etl_url) == 0
        with owner.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM households")).scalar() == total
    finally:
        with owner.begin() as c:
            for role in (login, elsewhere):
                c.execute(sa.text(f"DROP OWNED BY {role}"))
                c.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        owner.dispose()
