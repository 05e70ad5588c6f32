"""What a labelled file is, from its first record (engine/ml/data.py reads it as that): JSON lines, and among
them serve's 5656 report store."""
from __future__ import annotations

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
