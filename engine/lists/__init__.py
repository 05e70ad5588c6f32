"""DNC, sender registry, blacklists, consent and ML exemptions (mlexempt.py): the sets every check reads.

Theory of operation: `Lists` (sets.py) is the in-memory view checks read (roaring bitmaps of E.164
ints, dicts for names). `ListStore` (store.py) owns a data directory: one verified snapshot per list
kind plus an append-only delta journal for the DNC changes 5656 commands make between
snapshots, which `serve` appends to and the CLI folds in under the locks described in
journal.py. Every write builds the complete new state first and swaps it in with an atomic
rename, so a list is never half-written; a corrupt snapshot is refused and the previous good
generation (`.prev`) is used instead, with a warning.
"""
from __future__ import annotations

from .csvio import KINDS, CsvError, RowError, SenderEntry
from .sets import Lists
from .snapshot import SnapshotError
from .edits import add as add_entry
from .importing import ImportRefused
from .store import ListStore

__all__ = ["Lists", "ListStore", "SenderEntry", "SnapshotError", "CsvError", "ImportRefused", "RowError", "KINDS", "add_entry"]
