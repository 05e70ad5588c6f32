"""What a labelled file is, from its first record (engine/ml/data.py reads it as that): JSON lines, and among
them serve's 5656 report store; and the shapes of a TSV or CSV that read as written would be misread without a
word: a column the header row would have named, a CSV quote left open over the rows after it."""
from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter


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


def not_text(raw: bytes) -> str | None:
    """Why the bytes `raw` are no text file of labelled rows, or None: each of their lines was a bad line "not
    valid UTF-8 ... (save the file as UTF-8)", said of a gzip or a workbook too, or csv's traceback (UTF-16)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (a spreadsheet's \"Unicode Text\"); save the file as UTF-8"
    if raw.startswith(b"PK\x03\x04"):
        return "a ZIP archive (an .xlsx or .ods workbook?); save the sheet as CSV UTF-8"
    if raw.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00")) or (raw[:3] == b"BZh" and raw[4:10] == b"1AY&SY"):
        return "compressed (gzip, xz or bzip2); decompress it first"
    return None


def is_labels_log(text: str) -> bool:
    """The analysts' labels log (labels.jsonl beside the store: `{"id", "label", "time", "by"}` a line), which
    has labels but no texts: given as --data, each of its lines was a bad line "record has no `text` field"."""
    o = first_record(text)
    return o is not None and {"id", "label"} <= o.keys() <= {"id", "label", "time", "by"}


# A column of a file without a header row holding one word from a few (a `kind`: scam, personal; a `lang`): at
# most this many distinct values, some of them repeated
FEW_VALUES = 32
_WORD = re.compile(r"[^\W\d][\w-]{0,39}")


def unnamed_column(rows: list[list[str]], sep: str) -> str | None:
    """Why a file without a header row, of these `rows` split at `sep`, is refused: every row has 3 fields or more
    and its second field (or, every row as long, its last) is one word from a few (at most FEW_VALUES, fewer than
    the rows): `label<TAB>kind<TAB>text` whose header row was deleted by hand, each text read with its kind glued
    on (`scam<TAB>Vay tien…`) and the kind learnt as a feature. Refused, the header asked for, not guessed (the
    column may be a `lang`, or a text's first word); a text's own tabs or commas do not look so: some rows have
    none, or the words before them vary."""
    if len(rows) < 2 or min(len(r) for r in rows) < 3:
        return None
    for j in (1, -1) if len({len(r) for r in rows}) == 1 else (1,):
        seen = Counter(r[j].strip() for r in rows)
        if len(seen) <= FEW_VALUES and len(seen) < len(rows) and all(_WORD.fullmatch(v) for v in seen):
            col, tab = j % len(rows[0]) + 1, "<TAB>" if sep == "\t" else sep
            example = tab.join(("label", "kind", "text") if col == 2 else ("label", "text", "kind"))
            return (f"no header row, and column {col} of every row is one word of a few "
                    f"({', '.join(v for v, _ in seen.most_common(4))}, ...): a column such as `kind` or `lang`, "
                    f"which read as label then text would be part of every text; add the header row naming the "
                    f"columns (such as {example}), or label{tab}text if the {'tabs' if sep == chr(9) else 'commas'} "
                    "are the texts' own")
    return None


def csv_records(text: str, sep: str = ",") -> list[tuple[int, list[str], list[str]]]:
    """(line it starts on, fields, its physical lines) for each record of the CSV `text` separated by `sep`, as
    csv's non-strict reader splits it (csv.reader's line_num is where a record ends: a text with newlines is several
    lines)."""
    lines, out, start = [], [], 1

    def feed():
        for line in io.StringIO(text, newline=""):
            lines.append(line)
            yield line
    for row in csv.reader(feed(), delimiter=sep):
        out.append((start, row, lines[:]))
        start += len(lines)
        lines.clear()
    return out


def ends_quoted(text: str, sep: str = ",") -> bool:
    """The CSV `text` ends inside a quoted field (csv's non-strict reader takes the rest of the file as that field;
    its strict one says "unexpected end of data")."""
    return "unexpected end of data" in (_strict_error(text, sep) or "")


def _strict_error(text: str, sep: str = ",") -> str | None:
    """What csv's strict reader says of the CSV `text` (a quote left open to the end; a quote that closes a field
    followed by more of it, as `,"Win` is when the quote before it was never closed), or None."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True, delimiter=sep):
            pass
    except csv.Error as e:
        return str(e)
    return None


_LABEL_SETS = ({"spam", "ham"}, {"1", "0"}, {"true", "false"})


def semicolon_separated(line: str | None) -> str | None:
    """Why a file without a header row whose first row is a label then ';' cannot be read (a CSV separated by ';',
    read as label,text or label<TAB>text: refused whole, or every line a bad line, no word of the separator)."""
    if line and ";" in line and any(line.split(";", 1)[0].strip().lower() in s for s in _LABEL_SETS):
        return ("looks separated by ';' (a spreadsheet's CSV where the decimal mark is a comma): add the header row "
                "label;text (the file is then read as separated by ';'), or save it as CSV separated by commas")
    return None


def runs_on(lines: list[str], label_col: int, label: str, sep: str = ",") -> tuple[int, int] | None:
    """(index of the line whose quote is left open, index of the line inside it that begins as a row does) for a
    record spanning `lines`: a label written as the record's own `label` is (spam/ham, 1/0, true/false; any of
    them when that is no label) in its column, then a comma (`sep`). A quote never closed there, a later quote closing it:
    the rows between read as one text. A text with line breaks, quoted and closed, has no such line; as a line of a
    text may begin `1,` or `0,` (a numbered list, `0,50 EUR`), with 1 / 0 labels the record's quoting must also be
    broken (csv's strict reader refuses it: the quote that closed the text opened a later one, `,"Win`)."""
    same = next((s for s in _LABEL_SETS if label.strip().lower() in s), set().union(*_LABEL_SETS))
    inside, opened = False, 0
    for i, line in enumerate(lines):
        if i and inside:
            try:
                f = next(csv.reader([line.rstrip("\r\n")], delimiter=sep), [])
            except csv.Error:       # a NUL: no row of its own
                f = []
            if len(f) > label_col + 1 and f[label_col].strip().lower() in same:
                if not f[label_col].strip().isdigit() or _strict_error("".join(lines), sep):
                    return opened, i
                return None
        if not inside:
            opened = i          # the line the open quote (if this line leaves one open) is on
        inside ^= line.count('"') % 2 == 1
    return None


def text_takes_the_surplus(fields: list[str], text: int, width: int, sep: str) -> list[str]:
    """A row under a header of `width` columns with more fields than that: the surplus are the text's own tabs (a
    TSV has no escape for them) or unquoted commas, joined back into the text wherever its column is; empty cells
    ending the row (a spreadsheet's unused columns) are none. Only the text was joined so, and only when it was the
    header's last named column: any column after it (`label<TAB>text<TAB>note`, a column the reader ignores) was
    glued onto every text, and a CSV's unquoted comma cut its text short there (`spam,Win a prize, call now`
    under `label,text`: "Win a prize"), both trained and scored so without a word."""
    n = len(fields)
    while n > width and fields[n - 1] == "":
        n -= 1
    if n <= width:
        return fields[:n]
    extra = n - width
    return fields[:text] + [sep.join(fields[text:text + extra + 1])] + fields[text + extra + 1:n]
