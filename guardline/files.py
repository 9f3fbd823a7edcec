"""What a night writes is its owner's alone: files 0600, folders 0700.

The stage, the Great Expectations results, the DuckDB file, logs and the lists hold full
ID numbers, phones and names (PIPL's sensitive personal information: health,
assistance, disability). :func:`private` sets the process's umask to 077 whatever the
caller's, so that every file a step creates — by polars, DuckDB, GX or xlsxwriter alike —
is created readable by its owner only; :func:`private_folder` makes a folder (and the
ones it creates above it) 0700, also when it existed before with wider modes.
"""

from __future__ import annotations

import os
from pathlib import Path

UMASK = 0o077


def private() -> None:
    """Every file and folder this process creates from now on: its owner's only."""
    os.umask(UMASK)


def private_folder(path: Path) -> Path:
    """``path`` created if missing, and readable by its owner only."""
    private()
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
