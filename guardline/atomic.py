"""Writes a kill cannot tear, and locks that name their holder.

A night changes several files together (a source's records, ledger, quarantine and
watermark; the lists of a township folder). Replacing each file atomically is not
enough: a kill between two of them leaves a stage that contradicts itself. A
:class:`Transaction` keeps the new contents aside, then commits them as one step with a
redo journal: every new file is written under ``<root>/.tx/<id>/``, the journal naming
each move is made durable, and only then are the files moved into place. A process that
dies before the journal exists leaves the previous state (its scratch folder is thrown
away); one that dies after leaves a journal that :func:`recover` rolls forward. Either
way a reader sees the previous state or the new one, never a mix.

:func:`file_lock` is an exclusive ``flock`` with a bounded wait that, when it gives up,
says who holds the lock (pid, host, command, since when).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from guardline.errors import Busy

TX = ".tx"
JOURNAL = "journal.json"

Hook = Callable[[str], None]


class Transaction:
    """New contents of files under ``root``, committed together or not at all.

    ``put`` keeps a writer for a final path (called at commit with a scratch path),
    ``delete`` removes a file or folder. ``pending`` lets a reader see what this
    transaction will write, so that two updates of one file inside it compose.
    ``on_step`` is called at every boundary of the commit (tests kill the process there).
    """

    def __init__(self, root: Path, on_step: Hook | None = None) -> None:
        self.root = root
        self.id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        self.on_step = on_step or (lambda _step: None)
        self._writes: dict[Path, tuple[Callable[[Path], None], Any]] = {}
        self._deletes: list[Path] = []

    def put(self, final: Path, write: Callable[[Path], None], value: Any = None) -> None:
        """Replace ``final`` with what ``write(scratch_path)`` writes; ``value`` is what
        :meth:`pending` returns for it (the frame or text written)."""
        self._deletes = [d for d in self._deletes if d != final]
        self._writes[final] = (write, value)

    def put_same(self, final: Path, existing: Path, value: Any = None) -> None:
        """Replace ``final`` with the contents of ``existing``, a file under the same root
        that holds them already: linked, not written again (copied where the file system
        has no links). A night whose result equals an earlier night's pays for a link, not
        for encoding, compressing and syncing tens of megabytes."""
        self.put(final, lambda tmp: _same(existing, tmp), value)

    def delete(self, final: Path) -> None:
        self._writes.pop(final, None)
        self._deletes.append(final)

    def pending(self, final: Path) -> tuple[bool, Any]:
        """``(True, value)`` when this transaction writes ``final``, ``(True, None)`` when it
        deletes it, ``(False, None)`` when it leaves it alone."""
        if final in self._writes:
            return True, self._writes[final][1]
        return (final in self._deletes), None

    def pending_paths(self, folder: Path) -> list[Path]:
        """The files this transaction writes directly inside ``folder``."""
        return sorted(p for p in self._writes if p.parent == folder)

    @property
    def empty(self) -> bool:
        return not self._writes and not self._deletes

    def commit(self) -> None:
        if self.empty:
            return
        scratch = self.root / TX / self.id
        scratch.mkdir(parents=True, exist_ok=True)
        with _held(scratch / ".lock"):
            moves = []
            for i, (final, (write, _value)) in enumerate(self._writes.items()):
                tmp = scratch / f"{i}{final.suffix}"
                write(tmp)
                _fsync(tmp)
                moves.append([str(tmp.relative_to(self.root)), str(final.relative_to(self.root))])
            _fsync(scratch)
            self.on_step("tx:written")
            journal = {"moves": moves, "deletes": [str(d.relative_to(self.root)) for d in self._deletes]}
            part = scratch / (JOURNAL + ".part")
            part.write_text(json.dumps(journal, ensure_ascii=False), encoding="utf-8")
            _fsync(part)
            os.replace(part, scratch / JOURNAL)
            _fsync(scratch)
            self.on_step("tx:journal")
            _apply(self.root, scratch, journal, self.on_step)
        self.on_step("tx:done")


def _apply(root: Path, scratch: Path, journal: dict, on_step: Hook) -> None:
    """Roll a durable journal forward: idempotent, so a second attempt after a kill
    finishes what the first began."""
    for i, (tmp, final) in enumerate(journal["moves"]):
        source, target = root / tmp, root / final
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            _fsync(target.parent)
        on_step(f"tx:moved:{i}")
    for name in journal["deletes"]:
        target = root / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)


def recover(root: Path) -> None:
    """Finish or discard the transactions that a killed process left under ``root``.

    A scratch folder whose writer still lives (its lock is held) is left alone; one with
    a journal is rolled forward; one without is thrown away.
    """
    folder = root / TX
    if not folder.is_dir():
        return
    for scratch in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            handle = os.open(scratch / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # finished by its writer a moment ago
            continue
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            journal = scratch / JOURNAL
            if journal.exists():
                _apply(root, scratch, json.loads(journal.read_text(encoding="utf-8")), lambda _s: None)
            else:
                shutil.rmtree(scratch, ignore_errors=True)
        finally:
            os.close(handle)


@contextlib.contextmanager
def transaction(root: Path, on_step: Hook | None = None) -> Iterator[Transaction]:
    """``with transaction(root) as tx: tx.put(...)``: committed when the block ends
    without an exception, dropped otherwise."""
    tx = Transaction(root, on_step)
    yield tx
    tx.commit()


def write_text(path: Path, text: str) -> None:
    """One file replaced atomically (a scratch file beside it, then a rename)."""
    with transaction(path.parent) as tx:
        tx.put(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), text)


def _same(existing: Path, tmp: Path) -> None:
    try:
        os.link(existing, tmp)
    except OSError:
        shutil.copyfile(existing, tmp)


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - some file systems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def holder_text() -> str:
    """Who this process is, as a lock holder: pid, host, command and start."""
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:3]) if sys.argv else "python"
    return f"pid {os.getpid()} on {socket.gethostname()} ({command}) since {datetime.now():%Y-%m-%d %H:%M:%S}"


@contextlib.contextmanager
def file_lock(path: Path, what: str, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, waiting at most ``timeout``
    seconds for another holder; :class:`Busy` names that holder when the wait runs out.

    ``flock`` is released by the kernel when its process dies, so a killed run never
    leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip() or "another process"
                    raise Busy(
                        f"{what} is in use by {holder}; waited {timeout:g} s (--lock-timeout)"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_text().encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock
