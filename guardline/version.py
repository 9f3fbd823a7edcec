"""Which code ran: the run audit records it, and a night continues only a night made by
the same code (matching's basis)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def code_version() -> str:
    """The package version, and the git commit when run from a checkout."""
    try:
        from importlib.metadata import version

        v = version("guardline")
    except Exception:
        v = "unknown"
    head = Path(__file__).resolve().parents[1] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return f"{v}+{ref[:12]}"
    except OSError:
        return v
