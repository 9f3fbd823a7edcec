"""The one exception family users see: each carries a sentence a person can act on."""

from __future__ import annotations


class GuardlineError(Exception):
    """A problem with the user's input or setup (not a bug): the CLI prints it on one line."""


class DeliveryError(GuardlineError):
    """A delivered file that cannot be read as a whole: the batch fails, with its reason.

    The message names the file and, where one is to blame, the row and the field.
    """

    def __init__(self, file: str, reason: str, row: int | None = None, field: str | None = None):
        self.file, self.reason, self.row, self.field = file, reason, row, field
        where = file + (f", row {row}" if row is not None else "") + (f", {field}" if field else "")
        super().__init__(f"{where}: {reason}")


class Unavailable(GuardlineError):
    """A system we read from did not answer (the 人社 exchange database): worth trying
    again later, where a bad delivery or setting is not. The DAGs retry only these."""


class Busy(GuardlineError):
    """Another run holds the stage or the warehouse: the night does not start (exit 2),
    naming the holder, rather than interleave with it."""
