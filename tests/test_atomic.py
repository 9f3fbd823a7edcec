"""Several files replaced as one step, and locks that name their holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from guardline.atomic import TX, Transaction, file_lock, recover, transaction
from guardline.errors import Busy


class Stop(BaseException):
    """Stands for a kill inside the process: nothing after it runs."""


def _stop_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Stop(name)

    return hook


def _write(text: str):
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def _files(root) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text("utf-8")
        for p in root.rglob("*")
        if p.is_file() and TX not in p.parts
    }


@pytest.mark.parametrize(
    "step, expected",
    [
        ("tx:written", "old"),  # no journal yet: the previous state
        ("tx:journal", "new"),  # the journal is durable: rolled forward
        ("tx:moved:0", "new"),
        ("tx:moved:1", "new"),
    ],
)
def test_a_commit_stopped_anywhere_is_recovered_whole(tmp_path, step, expected):
    (tmp_path / "a.txt").write_text("a1", encoding="utf-8")
    (tmp_path / "gone.txt").write_text("bye", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b1", encoding="utf-8")
    old = _files(tmp_path)
    tx = Transaction(tmp_path, _stop_at(step))
    tx.put(tmp_path / "a.txt", _write("a2"))
    tx.put(tmp_path / "sub" / "b.txt", _write("b2"))
    tx.put(tmp_path / "new" / "c.txt", _write("c2"))
    tx.delete(tmp_path / "gone.txt")
    with pytest.raises(Stop):
        tx.commit()
    recover(tmp_path)
    new = {"a.txt": "a2", "sub/b.txt": "b2", "new/c.txt": "c2"}
    assert _files(tmp_path) == (old if expected == "old" else new)
    assert not any((tmp_path / TX).iterdir()), "nothing left aside"


def test_recovery_leaves_a_live_writer_alone(tmp_path):
    """A second process's open transaction (its scratch lock held) is not touched."""
    script = (
        "import sys, time, pathlib; from guardline.atomic import Transaction\n"
        "root = pathlib.Path(sys.argv[1]); tx = Transaction(root, lambda s: (s == 'tx:written') and "
        "((root / 'ready').touch(), time.sleep(5)))\n"
        "tx.put(root / 'x.txt', lambda p: p.write_text('x')); tx.commit()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)
    recover(tmp_path)
    assert any((tmp_path / TX).iterdir()), "the live writer's scratch folder was thrown away"
    assert child.wait(30) == 0
    assert (tmp_path / "x.txt").read_text() == "x"


def test_reads_inside_a_transaction_see_its_own_writes(tmp_path):
    with transaction(tmp_path) as tx:
        tx.put(tmp_path / "a.json", _write("{}"), {"k": 1})
        assert tx.pending(tmp_path / "a.json") == (True, {"k": 1})
        assert not (tmp_path / "a.json").exists(), "nothing in place before the commit"
    assert json.loads((tmp_path / "a.json").read_text()) == {}


def test_a_held_lock_names_its_holder_and_dies_with_it(tmp_path):
    lock = tmp_path / ".lock"
    script = (
        "import sys, time, pathlib; from guardline.atomic import file_lock\n"
        "with file_lock(pathlib.Path(sys.argv[1]), 'the stage', 1):\n"
        "    pathlib.Path(sys.argv[1] + '.ready').touch(); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(lock)])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / ".lock.ready").exists():
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
        started = time.monotonic()
        busy = rf"the stage is in use by pid {child.pid} on .*waited 0.5 s"
        with pytest.raises(Busy, match=busy), file_lock(lock, "the stage", 0.5):
            pass
        assert time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait()
    with file_lock(lock, "the stage", 5):  # the killed holder left no lock behind
        assert f"pid {os.getpid()}" in lock.read_text()
