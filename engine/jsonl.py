"""JSON Lines inputs read one way (`check --jsonl`, `ml predict --jsonl`, `rules test --corpus`): UTF-8, a BOM no
part of line 1, and a byte that is not UTF-8 (a lone surrogate after decoding with surrogateescape) or a line that is
no JSON value costing that line its own error, never the run a traceback."""
from __future__ import annotations

import io
import json
import re
import sys

_SURROGATE = re.compile("[\udc80-\udcff]")


class LineError(ValueError):
    """Why a line is no JSON value; its message is what the caller reports for the line."""


def open_jsonl(path: str):
    """A text stream of `path` ("-": standard input) as these inputs are read."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape")
    return open(path, encoding="utf-8-sig", errors="surrogateescape")


def numbered(stream):
    """(line number, line) of each line that is not blank; a BOM at the start of line 1 (on standard input,
    which utf-8-sig does not strip once wrapped) is no part of it."""
    for n, line in enumerate(stream, 1):
        if n == 1:
            line = line.lstrip("\ufeff")
        if line.strip():
            yield n, line


def loads(line: str):
    """The JSON value of one line, else LineError: 'not valid UTF-8: byte 0xNN at column C', 'not JSON: …'."""
    bad = _SURROGATE.search(line)
    if bad:
        raise LineError(f"not valid UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at column {bad.start() + 1}")
    try:
        return json.loads(line)
    except RecursionError:
        raise LineError("not JSON: nested too deeply") from None
    except ValueError as e:
        raise LineError(f"not JSON: {e}") from None
