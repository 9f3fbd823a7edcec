import os
import subprocess
import sys


def _guardline(*args, env_key: bool = False):
    env = {k: v for k, v in os.environ.items() if k != "GUARDLINE_PSEUDONYM_KEY"}
    if env_key:
        env["GUARDLINE_PSEUDONYM_KEY"] = "a-test-secret-of-enough-length"
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_generate_writes_inbox_and_truth(tmp_path):
    result = _guardline(
        "generate",
        "--out",
        str(tmp_path),
        "--households",
        "120",
        "--seed",
        "2",
        "--as-of",
        "2026-11-27",
        "--noise",
        "clean",
        "--register-format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    assert "health_insurance" in result.stdout
    for sub in ("registry", "civil_affairs", "health_insurance", "emergency_management"):
        assert any((tmp_path / "inbox" / sub).iterdir())
    assert (tmp_path / "inbox" / "human_resources" / "exchange.sqlite").is_file()
    assert (tmp_path / "truth" / "links.csv").is_file()


def test_usage_mistakes_exit_2_without_a_traceback(tmp_path):
    from pipeline.cli import invoke

    for args in (["run", "--bogus"], ["run", "--inbox", str(tmp_path), "--lock-timeout", "soon"], ["nonsense"]):
        assert invoke(args) == 2, args


def test_user_mistakes_are_one_line_and_exit_non_zero(tmp_path):
    for args, words in (
        (("--as-of", "2026-13-01"), "--as-of"),
        (("--noise", "loud"), "noise profile"),
        (("--households", "3"), "at least 10"),
    ):
        result = _guardline("generate", "--out", str(tmp_path), *args)
        assert result.returncode == 2
        assert words in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_ingest_match_evaluate(tmp_path):
    made = _guardline(
        "generate",
        "--out",
        str(tmp_path),
        "--households",
        "60",
        "--seed",
        "4",
        "--as-of",
        "2026-11-27",
        "--register-format",
        "csv",
    )
    assert made.returncode == 0, made.stderr
    result = _guardline(
        "ingest",
        "--inbox",
        str(tmp_path / "inbox"),
        "--as-of",
        "2026-11-27",
        "--stage",
        str(tmp_path / "stage"),
    )
    assert result.returncode == 0, result.stderr
    for name in ("registry", "civil_affairs", "health_insurance", "emergency_management", "human_resources"):
        assert name in result.stdout
    assert "index.html" in result.stdout
    matched = _guardline("match", "--stage", str(tmp_path / "stage"), "--as-of", "2026-11-27", "--show-model")
    assert matched.returncode == 0, matched.stderr
    assert "matched" in matched.stdout and "pairs compared" in matched.stdout
    assert "证件号码" in matched.stdout and "same pinyin" in matched.stdout, "the learned levels are shown"
    exported = _guardline(
        "review", "export", str(tmp_path / "review.csv"), "--stage", str(tmp_path / "stage")
    )
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "review.csv").read_text(encoding="utf-8-sig").splitlines()
    assert text[0].startswith("来源,记录编号,记录姓名") and text[0].endswith(",判断")
    assert len(text) > 1, "this seeded county has records in review"
    (tmp_path / "review.csv").write_text(
        "\n".join([text[0], text[1].rstrip(",") + ",不是"]) + "\n", encoding="utf-8-sig"
    )
    imported = _guardline(
        "review", "import", str(tmp_path / "review.csv"), "--stage", str(tmp_path / "stage")
    )
    assert imported.returncode == 0, imported.stderr
    assert "1 rejected" in imported.stdout
    flagged = _guardline("flag", "--stage", str(tmp_path / "stage"), "--as-of", "2026-11-27")
    assert flagged.returncode == 0, flagged.stderr
    assert "households to visit" in flagged.stdout
    listed = _guardline(
        "lists",
        "--stage",
        str(tmp_path / "stage"),
        "--as-of",
        "2026-11-27",
        "--outbox",
        str(tmp_path / "outbox"),
    )
    assert listed.returncode == 0, listed.stderr
    assert list((tmp_path / "outbox" / "2026-11-27").glob("*.xlsx"))
    measured = _guardline("evaluate", "--truth", str(tmp_path / "truth"), "--stage", str(tmp_path / "stage"))
    assert measured.returncode == 0, measured.stderr
    assert "precision" in measured.stdout and "recall" in measured.stdout
    assert "flag precision" in measured.stdout
    missing = _guardline("ingest", "--inbox", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no inbox folder" in missing.stderr


def test_match_without_a_stage_says_so(tmp_path):
    result = _guardline("match", "--stage", str(tmp_path))
    assert result.returncode == 2 and "no register staged" in result.stderr


def test_run_does_the_whole_night_and_refuses_without_a_key(tmp_path):
    made = _guardline(
        "generate",
        "--out",
        str(tmp_path),
        "--households",
        "80",
        "--seed",
        "5",
        "--as-of",
        "2026-11-27",
        "--register-format",
        "csv",
    )
    assert made.returncode == 0, made.stderr
    refused = _guardline("run", "--inbox", str(tmp_path / "inbox"), "--as-of", "2026-11-27")
    assert refused.returncode == 2 and "GUARDLINE_PSEUDONYM_KEY" in refused.stderr
    assert not (tmp_path / "stage").exists(), "refused before doing anything"
    night = _guardline("run", "--inbox", str(tmp_path / "inbox"), "--as-of", "2026-11-27", env_key=True)
    assert night.returncode == 0, night.stderr
    for step in ("extract+validate", "match", "rules", "load", "publish"):
        assert step in night.stdout
    import sqlalchemy as sa

    with sa.create_engine(f"duckdb:///{tmp_path / 'warehouse.duckdb'}").connect() as c:
        counts = c.execute(sa.text("SELECT counts FROM run_audit")).scalar_one()
    assert '"links"' in counts and '"seconds"' in counts and '"extract+validate"' in counts
    assert list((tmp_path / "outbox" / "2026-11-27").glob("*.xlsx"))
