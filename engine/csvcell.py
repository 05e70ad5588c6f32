"""Spreadsheet-safe cells for the CSV and TSV files people open in a spreadsheet.

The texts in telfilter's exports (5656 reports, the messages whose verdict a candidate model
changes, the regulator's tables of sender IDs) are written by whoever sent the SMS: a text or a
sender ID beginning with `=`, `+`, `-` or `@` (or a tab or carriage return) is a formula to a
spreadsheet (`=HYPERLINK(...)`, DDE), run when an analyst opens the file. `cell` writes such a
value with one leading apostrophe, which spreadsheets show as the text itself (OWASP's
recommendation for CSV injection). The apostrophe is also added to a value that is apostrophes
followed by one of those characters, so `uncell`, which removes one apostrophe from exactly the
values `cell` changes, gives every text back as it was: a training file exported by
`telfilter reports export` trains on the messages as sent (engine/ml/data.py reads text cells
through `uncell`).
"""
from __future__ import annotations

import re

_RISKY = re.compile(r"'*[=+\-@\t\r]")


def cell(v):
    """`v` as written to a CSV/TSV cell: strings a spreadsheet would run get a leading apostrophe."""
    return "'" + v if isinstance(v, str) and _RISKY.match(v) else v


def uncell(v: str) -> str:
    """The inverse of `cell` on strings."""
    return v[1:] if v[:1] == "'" and _RISKY.match(v, 1) else v


def row(values) -> list:
    return [cell(v) for v in values]
