"""The staging area of one county: every version of every record with the night it
arrived, the ledger of files, the quarantine, and what each night's steps made of them."""

from staging.stage import Stage, stage_lock

__all__ = ["Stage", "stage_lock"]
