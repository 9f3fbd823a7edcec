import hashlib

from synth.generate import generate
from tests.conftest import AS_OF


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    a = _digest(generate(tmp_path / "a", households=250, seed=5, as_of=AS_OF).out)
    b = _digest(generate(tmp_path / "b", households=250, seed=5, as_of=AS_OF).out)
    c = _digest(generate(tmp_path / "c", households=250, seed=6, as_of=AS_OF).out)
    assert a == b
    assert any(f.endswith(".xlsx") for f in a) and any(f.endswith(".sqlite") for f in a)
    assert a != c
