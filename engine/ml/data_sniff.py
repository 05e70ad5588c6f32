"""What a labelled file is, from its first record (engine/ml/data.py reads it as that): JSON lines, and among
them serve's 5656 report store; and a CSV quote left open over the rows after it, which read as written would
be misread without a word."""
from __future__ import annotations

import csv
import io
import json


def first_line(text: str) -> str | None:
    """The first line of `text` that is not blank, found without splitting the whole file (a store of a year's
    reports was split three times over to read its first record)."""
    pos = 0
    while True:
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.strip():
            return line
        if end < 0:
            return None
        pos = end + 1


# Lines beginning with `{` that are no JSON object (a report a crash cut short, a hand edit) passed over before the
# first record decides what the file is
_BAD_FIRST_LINES = 10


def first_record(text: str) -> dict | None:
    """The first JSON object of a file of JSON lines, passing over up to _BAD_FIRST_LINES lines that begin as one
    but do not parse (their readers name them as bad lines); None when the file is no JSON lines. Deciding by the
    first line alone, a store whose first report was cut short was read as labelled records: its labels.jsonl
    ignored, every report counted as unlabelled."""
    pos, bad = 0, 0
    while bad <= _BAD_FIRST_LINES:
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.strip():
            if not line.lstrip().startswith("{"):
                return None
            try:
                o = json.loads(line)
            except (ValueError, RecursionError):
                o = None
            if isinstance(o, dict):
                return o
            bad += 1
        if end < 0:
            return None
        pos = end + 1
    return None


def json_object_first(text: str) -> bool:
    """The first record is a JSON object (see first_record)."""
    return first_record(text) is not None


def is_store(text: str) -> bool:
    """A 5656 report store (what serve appends): its first record has the fields only a report has (`reporter`,
    `content`, `time`), no `text`, and a report `kind` (S, V or FW). Any other JSONL is read as labelled
    records, `content` standing for `text`."""
    o = first_record(text)
    return o is not None and {"reporter", "content", "time"} <= o.keys() and "text" not in o \
        and o.get("kind") in ("S", "V", "FW")


def csv_records(text: str) -> list[tuple[int, list[str], list[str]]]:
    """(line it starts on, fields, its physical lines) for each record of the CSV `text`, as csv's non-strict
    reader splits it (csv.reader's line_num is where a record ends: a text with newlines is several lines)."""
    lines, out, start = [], [], 1

    def feed():
        for line in io.StringIO(text, newline=""):
            lines.append(line)
            yield line
    for row in csv.reader(feed()):
        out.append((start, row, lines[:]))
        start += len(lines)
        lines.clear()
    return out


def ends_quoted(text: str) -> bool:
    """The CSV `text` ends inside a quoted field (csv's non-strict reader takes the rest of the file as that field;
    its strict one says "unexpected end of data")."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as e:
        return "unexpected end of data" in str(e)
    return False


_LABEL_SETS = ({"spam", "ham"}, {"1", "0"}, {"true", "false"})


def runs_on(lines: list[str], label_col: int, label: str) -> tuple[int, int] | None:
    """(index of the line whose quote is left open, index of the line inside it that begins as a row does) for a
    record spanning `lines`: a label written as the record's own `label` is (spam/ham, 1/0, true/false; any of
    them when that is no label) in its column, then a comma, and not a decimal such as `0,50 EUR`. A quote never
    closed there, a later quote closing it: the rows between read as one text. A text with line breaks, quoted and
    closed, has no such line."""
    same = next((s for s in _LABEL_SETS if label.strip().lower() in s), set().union(*_LABEL_SETS))
    inside, opened = False, 0
    for i, line in enumerate(lines):
        if i and inside:
            try:
                f = next(csv.reader([line.rstrip("\r\n")]), [])
            except csv.Error:       # a NUL: no row of its own
                f = []
            if len(f) > label_col + 1 and f[label_col].strip().lower() in same \
                    and not (f[label_col].strip().isdigit() and f[label_col + 1][:1].isdigit()):
                return opened, i
        if not inside:
            opened = i          # the line the open quote (if this line leaves one open) is on
        inside ^= line.count('"') % 2 == 1
    return None
