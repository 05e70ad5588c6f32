"""Labelled rows: the Dataset a file's rows are gathered in (texts, labels, kinds, languages; bad lines and notes),
a label as read, and the TSV and CSV readers that fill it (a header row naming the columns, or none; quoting; a
`reports export` text's leading apostrophe). Which reader a file takes, JSONL and the report store: data.py, whose
docstring lists the formats."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..csvcell import uncell
from .data_sniff import (csv_records, ends_quoted, first_line, runs_on, semicolon_separated, text_takes_the_surplus,
                         unnamed_column)

LABELS = {"spam": 1, "ham": 0, "1": 1, "0": 0, "true": 1, "false": 0}


class DataError(Exception):
    pass


@dataclass
class Dataset:
    texts: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    langs: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)       # `path: what was left out and why`, for the user to see
    info: dict = field(default_factory=dict)

    def add(self, text, label, kind=None, lang=None):
        if not text.strip():
            # a label with no message (a spreadsheet's label filled down past the texts): nothing to learn from,
            # and as `reports export` leaves an empty report out, a bad line here rather than an empty example
            raise DataError("empty text")
        self.texts.append(text)
        self.labels.append(label)
        self.kinds.append(kind or None)
        self.langs.append(lang or None)

    def extend(self, other: "Dataset"):
        for k in ("texts", "labels", "kinds", "langs", "errors", "notes"):
            getattr(self, k).extend(getattr(other, k))


def parse_label(v, where):
    if isinstance(v, int) and not isinstance(v, bool) and v in (0, 1):
        v = str(v)                      # a JSON 1 / 0 (as the message below says)
    if isinstance(v, str) and v.strip().lower() in LABELS:
        return LABELS[v.strip().lower()]
    raise DataError(f"{where}: label must be spam or ham (or 1 / 0), got {v!r}")


def _columns(header: list[str], where: str) -> dict | None:
    """Column indexes by name, or None when this row is not a header."""
    h = [c.strip().lower() for c in header]
    if "label" not in h or "text" not in h:
        return None
    cols = {"label": h.index("label"), "text": h.index("text")}
    for name, keys in (("kind", ("kind",)), ("lang", ("lang", "language"))):
        for k in keys:
            if k in h:
                cols[name] = h.index(k)
                break
    width = len(h)
    while width > 2 and not h[width - 1]:       # a spreadsheet's unused columns, no part of the header
        width -= 1
    cols["width"] = width
    return cols


_QUOTED = re.compile(r'"(?:[^"]|"")*"', re.S)


def _unquote(v: str) -> str:
    """A field a CSV writer quoted because it held quotes ("... ""x"" ...": the doubled quotes prove it) as its
    text; any other as it is: the shared files are plain TSV whose texts may begin and end with a quote of their
    own (34 UCI texts are "wrapped" so, with nothing doubled inside)."""
    return v[1:-1].replace('""', '"') if len(v) >= 4 and '""' in v[1:-1] and _QUOTED.fullmatch(v) else v


def _row(ds: Dataset, fields: list[str], cols: dict, where: str, sep: str = ","):
    width = cols.get("width")
    if width is not None:
        fields = text_takes_the_surplus(fields, cols["text"], width, sep)
    if sep == "\t":
        fields = [_unquote(f) for f in fields]
    try:
        lab, t = fields[cols["label"]], uncell(fields[cols["text"]])
    except IndexError:
        ds.errors.append(f"{where}: {_short_row(cols, len(fields))}")
        return
    k = fields[cols["kind"]].strip() if "kind" in cols and cols["kind"] < len(fields) else None
    g = fields[cols["lang"]].strip() if "lang" in cols and cols["lang"] < len(fields) else None
    try:
        ds.add(t, parse_label(lab, where), k, g)
    except DataError as e:
        ds.errors.append(str(e) if str(e).startswith(where) else f"{where}: {e}")


def _short_row(cols: dict, n: int) -> str:
    """Why a row of `n` fields is too short for the header's columns (it said "expected 3 named columns" under a
    six-column `reports export` header: the three it reads, not where they are)."""
    return (f"missing columns: the header row puts `label` in column {cols['label'] + 1} and `text` in column "
            f"{cols['text'] + 1}, this row has {n}")



def header_separator(text: str) -> str | None:
    """The separator, tab, comma or ';', when the first non-blank line is a header naming `label` and `text` split
    at it: the file is that whatever its name (`reports export --format csv --out labelled.txt`, a TSV export
    named .csv, Excel's CSV separated by ';'), which read by its name gave a bad line of each or refused it."""
    line = first_line(text)
    if line is None:
        return None
    if _columns(line.rstrip("\r").split("\t"), "") is not None:
        return "\t"
    for sep in (",", ";"):
        try:
            first = next(csv.reader([line], delimiter=sep))
        except csv.Error:       # a carriage return inside the line (`spam,a\rb`): no CSV header
            return None
        if _columns(first, "") is not None:
            return sep
    return None


def _semicolons(p: Path, line: str | None) -> None:
    why = semicolon_separated(line)
    if why:
        raise DataError(f"{p}:1: {why}")



def add_csv(ds: Dataset, p: Path, text: str, sep: str = ","):
    recs = csv_records(text, sep)
    first = recs[0][1] if recs else []
    cols = _columns(first, f"{p}:1")
    bare = cols is None
    if bare:
        if not (len(first) >= 2 and first[0].strip().lower() in LABELS):
            _semicolons(p, first_line(text))
            found = ", ".join(repr(c) for c in first[:6])
            raise DataError(f"{p}:1: CSV header needs `label` and `text` columns (found {found}); without a header, "
                            "each row is label,text")
        cols = {"label": 0, "text": 1}             # no header: label,text rows, as a TSV without one
        _no_unnamed_column(p, 1, [_cells(r) for _, r, _ in recs if r], ",")
    else:
        recs = recs[1:]
    for n, (start, row, lines) in enumerate(recs, 1):
        if not row:
            continue
        end = start + len(lines) - 1
        if end > start and n == len(recs) and ends_quoted(text, sep):
            # the file ended inside a quoted text: every row after its opening quote was read as that text, lost to
            # training with no word (`spam,"Win` then 500 rows: one spam message)
            ds.errors.append(f"{p}:{start}: a quoted text opened on this line is never closed: the lines from here "
                             f"to the end of the file ({end}) would be one text; close it with \"")
            continue
        run = (runs_on(lines, cols["label"], row[cols["label"]], sep) if end > start and len(row) > cols["label"]
               else None)
        if run:
            # closed by a later quote instead: the rows between were read as part of that text, as silently
            ds.errors.append(f"{p}:{start + run[0]}: a quoted text opened on this line runs on into line "
                             f"{start + run[1]}, which begins as a row of its own: lines {start + run[0]} to {end} "
                             "would be one text; close the quote with \"")
            continue
        # the line the record starts on (a text with newlines ends lines later)
        _row(ds, _label_text(row) if bare else row, cols, f"{p}:{start}", sep)


def _no_unnamed_column(p: Path, line: int, rows: list[list[str]], sep: str):
    """Refuses a file without a header row whose rows hold a column the header would name (unnamed_column)."""
    why = unnamed_column(rows, sep)
    if why:
        raise DataError(f"{p}:{line}: {why}")


def _label_text(row: list[str]) -> list[str]:
    """A CSV row without a header as [label, text]: the commas after the label are the text's own, as a TSV's tabs
    are (a hand-written "spam,Win a prize, call now" trained on "Win a prize", the rest dropped without a word)."""
    row = _cells(row)
    return [row[0], ",".join(row[1:])]


def _cells(row: list[str]) -> list[str]:
    """A CSV row without the empty cells ending it: a spreadsheet's unused columns, no part of it."""
    n = len(row)
    while n > 2 and row[n - 1] == "":
        n -= 1
    return row[:n]


def add_tsv(ds: Dataset, p: Path, text: str):
    cols = None
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if "\t" not in line:
            if not ds.texts and not ds.errors:
                _semicolons(p, line)
            ds.errors.append(f"{p}:{i}: {_short_row(cols, 1) if cols else 'expected label<TAB>text'}")
            continue
        fields = line.split("\t")
        if cols is None and not ds.texts and not ds.errors:
            cols = _columns(fields, f"{p}:{i}")
            if cols is not None:                        # a header row: columns by name
                continue
            cols = {}                                   # no header: label<TAB>text (text may hold tabs)
            named = fields[0].strip().lower() not in LABELS
            rows = [r.rstrip("\r").split("\t") for r in text.split("\n")[i - 1 + named:]
                    if "\t" in r and r.strip()]
            _no_unnamed_column(p, i + named, rows, "\t")
            if named:
                # neither: a header naming its columns otherwise ("class<TAB>sms") said "label must be spam or
                # ham, got 'class'", as if a data row were wrong
                found = ", ".join(repr(f) for f in fields[:6])
                ds.errors.append(f"{p}:{i}: a header row needs `label` and `text` columns (found {found}); "
                                 "without a header, each line is label<TAB>text")
                continue
        if cols:
            _row(ds, fields, cols, f"{p}:{i}", "\t")
        else:
            _row(ds, [fields[0], line.split("\t", 1)[1]], {"label": 0, "text": 1}, f"{p}:{i}", "\t")

