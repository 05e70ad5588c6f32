"""Spreadsheet-safe cells for the CSV and TSV files people open in a spreadsheet.

The texts in telfilter's exports (5656 reports, the messages whose verdict a candidate model
changes, the regulator's tables of sender IDs) are written by whoever sent the SMS: a text or a
sender ID beginning with `=`, `+`, `-` or `@` (or a tab or carriage return) is a formula to a
spreadsheet (`=HYPERLINK(...)`, DDE), run when an analyst opens the file. `cell` writes such a
value with one leading apostrophe, which spreadsheets show as the text itself (OWASP's
recommendation for CSV injection). The apostrophe is also added to a value that is apostrophes
followed by one of those characters, so `uncell`, which removes one apostrophe from exactly the
values `cell` changes, gives every text back as it was: a training file exported by
`telfilter reports export` trains on the messages as sent (engine/ml/data_rows.py reads text cells
through `uncell`).

`writer` / `dict_writer`: csv's writers with lineterminator "\n" quote a field holding "\n" but not one holding a
bare "\r", which every CSV reader (csv.reader included) takes for a line end: a 5656 report "a\rb" came back from
`reports export --out x.csv` as the text "a" and a stray row "b". These quote such a field too.
"""
from __future__ import annotations

import csv
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


_QUOTE = re.compile('[",\n\r]')


def _field(v) -> str:
    s = "" if v is None else str(v)
    return '"' + s.replace('"', '""') + '"' if _QUOTE.search(s) else s


class _Writer:
    """csv.writer(f, lineterminator="\n"), a row with a carriage return in a field written with that field quoted."""

    def __init__(self, f):
        self._f, self._w = f, csv.writer(f, lineterminator="\n")

    def writerow(self, values):
        values = list(values)
        if any(isinstance(v, str) and "\r" in v for v in values):
            return self._f.write(",".join(map(_field, values)) + "\n")
        return self._w.writerow(values)

    def writerows(self, rows) -> None:
        for r in rows:
            self.writerow(r)


def writer(f) -> _Writer:
    return _Writer(f)


def dict_writer(f, fieldnames) -> csv.DictWriter:
    w = csv.DictWriter(f, fieldnames, lineterminator="\n")
    w.writer = _Writer(f)            # DictWriter writes its rows (and header) through .writer
    return w
