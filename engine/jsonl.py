"""JSON Lines inputs read one way (`check --jsonl`, `ml predict --jsonl`, `rules test --corpus`): UTF-8, a BOM no
part of line 1, and a byte that is not UTF-8 (a lone surrogate after decoding with surrogateescape) or a line that is
no JSON value costing that line its own error, never the run a traceback. So does a `\\ud83d` escape with no other half
of its pair: JSON allows it (RFC 8259 §8.2), but it is no character, and no UTF-8 output can hold the string it made
(a 5656 report's content to reports.jsonl was an internal error; an echoed sender stopped the run on a traceback)."""
from __future__ import annotations

import io
import json
import os
import re
import sys

_SURROGATE = re.compile("[\udc80-\udcff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")     # a \uD800-\uDFFF escape (a pair's half or a lone one)
_LONE = re.compile("[\ud800-\udfff]")                    # json.loads joins a pair: a surrogate left is lone


class LineError(ValueError):
    """Why a line is no JSON value; its message is what the caller reports for the line. `value`: the JSON value of
    a line refused for a lone surrogate (its `id` still names the line), else None."""

    def __init__(self, why: str, value=None):
        super().__init__(why)
        self.value = value


def open_jsonl(path: str):
    """A text stream of `path` ("-": standard input) as these inputs are read."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape")
    return open(path, encoding="utf-8-sig", errors="surrogateescape")


def numbered(stream, bar=None):
    """(line number, line) of each line that is not blank; a BOM at the start of line 1 (on standard input,
    which utf-8-sig does not strip once wrapped) is no part of it. `bar` (progress_bar's, unit bytes): moved on
    by each line's bytes."""
    for n, line in enumerate(stream, 1):
        if bar is not None:
            bar.update(len(line.encode("utf-8", "surrogateescape")))
        if n == 1:
            line = line.lstrip("\ufeff")
        if line.strip():
            yield n, line


def progress_bar(path: str, desc: str, total: int | None = None, unit: str = "B"):
    """A progress bar on stderr for a long run over `path` (a file over 8 MB, as `lists import` and `report` show
    one for) when stderr is a terminal, else None. total: the file's bytes unless given (then in `unit`)."""
    if path == "-" or not sys.stderr.isatty():
        return None
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if size <= 8 << 20:
        return None
    try:
        from tqdm import tqdm
    except ImportError:           # a convenience: the run does not need it
        return None
    return tqdm(total=size if total is None else total, unit=unit, unit_scale=unit == "B", desc=desc, leave=False)


def loads(line: str):
    """The JSON value of one line, else LineError: 'not valid UTF-8: byte 0xNN at column C', 'not JSON: …'."""
    bad = _SURROGATE.search(line)
    if bad:
        raise LineError(f"not valid UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at column {bad.start() + 1}")
    try:
        v = json.loads(line)
    except RecursionError:
        raise LineError("not JSON: nested too deeply") from None
    except ValueError as e:
        raise LineError(f"not JSON: {e}") from None
    why = unpaired_in(line, v)
    if why is not None:
        raise LineError(why, v)
    return v


NOT_JSON_ID = ("id must be a string or a finite number (NaN, Infinity and 1e400, read as infinite, are no JSON numbers "
               "to write back)")


def not_json(v) -> bool:
    """Whether `v` (a line's id, echoed) holds a NaN or an infinity: json.loads reads them, `Infinity` is no JSON."""
    try:
        json.dumps(v, allow_nan=False)
    except ValueError:
        return True
    except RecursionError:          # (said otherwise by whoever writes it back)
        return False
    return False


def unpaired_in(line: str, v) -> str | None:
    """Why `v`, the JSON value of `line`, is refused for a lone surrogate an escape made, else None (a line without
    a \\uD800-\\uDFFF escape costs one regex search)."""
    if _ESCAPED_SURROGATE.search(line):
        lone = lone_surrogate(v)
        if lone is not None:
            return unpaired(lone)
    return None


def unpaired(code: int) -> str:
    """Why a value holding the lone surrogate `code` is refused (the words every JSON reader here uses)."""
    return f"not valid Unicode: \\u{code:04x} is half of a surrogate pair, without its other half"


def lone_surrogate(v) -> int | None:
    """The first lone surrogate in a JSON value's strings (keys too), else None; no recursion (a value may be
    nested as deeply as json.loads allows)."""
    todo = [v]
    while todo:
        x = todo.pop()
        if isinstance(x, str):
            m = _LONE.search(x)
            if m:
                return ord(m.group())
        elif isinstance(x, dict):
            todo.extend(x.keys())
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
    return None


def echoed_id(obj, refused: Exception | None = None):
    """The `id` a line's verdict or error record echoes: that of its object (a dict), or, the line refused, of the
    JSON value the error carries (a lone surrogate elsewhere on the line); None without one, or with one that cannot
    be written back (NaN, Infinity, a lone surrogate)."""
    if obj is None and refused is not None:
        obj = getattr(refused, "value", None)
    rid = obj.get("id") if isinstance(obj, dict) else None
    return None if rid is None or not_json(rid) or lone_surrogate(rid) is not None else rid


def error_line(n: int, rid, msg: str) -> str:
    """A refused line's record, as `check --jsonl` and `ml predict --jsonl` write it: {"line", "id" (when it has one
    to echo: echoed_id), "error"} and a newline."""
    err = {"line": n} if rid is None else {"line": n, "id": rid}
    err["error"] = msg
    return dumps_line(err, n)


def dumps_line(d: dict, n: int) -> str:
    """Line `n`'s record `d` as a JSON line; an error record if its echoed `id` is nested too deeply to write."""
    try:
        return json.dumps(d, ensure_ascii=False) + "\n"
    except RecursionError:
        return json.dumps({"line": n, "error": "id nested too deeply"}) + "\n"


def whole_object(raw: bytes) -> bool:
    """Whether a line with no newline after it yet is a whole JSON object already."""
    try:
        return isinstance(json.loads(raw.decode("utf-8-sig")), dict)
    except (ValueError, RecursionError):            # (a UnicodeDecodeError is a ValueError)
        return False


def decoded_line(raw: bytes) -> tuple[str | None, str | None]:
    """A line's text (a byte-order mark no part of it), or why it is none: a bad byte said as `check --jsonl` and
    `ml train` say it (column in characters)."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        col = len(raw[:e.start].decode("utf-8-sig")) + 1
        return None, f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {col}"
