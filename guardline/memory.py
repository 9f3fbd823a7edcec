"""A step's peak memory, measured by the kernel: the process's resident high-water mark
(``VmHWM``), reset when a step starts (Linux's ``/proc/self/clear_refs``, value 5), so
that each step of one process gets its own peak, not the night's so far. Where the mark
cannot be reset (another kernel), the peak is the process's since it started
(``getrusage``), which is still an upper bound.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new high-water mark; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """The resident high-water mark since the last reset (or the process's start), MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
