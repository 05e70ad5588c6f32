"""The 5656 commands' digests as their durable lines keep them (mo_redelivery.py): a DNC journal line's and a
reports.jsonl line's (time, digest, DNC number), read back at a start and as other processes append them."""
from __future__ import annotations

import json
import re
from datetime import datetime
from math import isfinite

_BLOCK = 1 << 16        # bytes read at a time from reports.jsonl's end
_MAX_READ = 64 << 20    # bytes of reports.jsonl read back at most
# a dnc.delta.recent line as lists/journal.py writes it
_RECENT = re.compile(rb'\{"number": ([0-9]{1,19}), "mo_digest": "([0-9a-f]{16})", "at": ([0-9]{1,12}\.[0-9]+)\}')


def _journal_line(line: bytes):
    """(time, digest, DNC number) of a DNC journal line a 5656 command wrote, else None."""
    if b'"mo_digest"' not in line:
        return None
    try:
        r = json.loads(line)
        at, d, number = float(r["at"]), int(r["mo_digest"], 16), r["number"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    # (what the ring's arrays hold: a 64-bit digest, a number below 2**63, a finite time; else a damaged line)
    return (at, d, number) if type(number) is int and 0 < number < 1 << 63 and 0 <= d < 1 << 64 and isfinite(at) \
        else None


def _report_line(line: bytes):
    """(time, digest, None) of a reports.jsonl line a 5656 command wrote; (time, None, None) of another report line;
    None for a line that is no report."""
    try:
        r = json.loads(line)
        at = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
        d = r.get("mo_digest")
        d = int(d, 16) if isinstance(d, str) else None
        return at, d if d is not None and 0 <= d < 1 << 64 else None, None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _journal_digests(path, since: float) -> list:
    """[(time, digest, DNC number)] of the 5656 DNC commands in journal `path` since `since`."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        return [x for x in map(_journal_line, f) if x is not None and x[0] >= since]


def _blocks_from_end(f, limit: int | None = None):
    """The whole lines of open file `f`, _BLOCK bytes at a time from its end, each block's in the file's order (a line
    cut by a block's start is read with the block before); at most `limit` bytes read."""
    pos, tail, read = f.seek(0, 2), b"", 0
    while pos > 0 and (limit is None or read < limit):
        n = min(_BLOCK, pos)
        pos -= n
        f.seek(pos)
        lines = (f.read(n) + tail).split(b"\n")
        read += n
        tail = lines.pop(0) if pos > 0 else b""
        yield lines


def _recent_digests(path, since: float) -> list:
    """[(time, digest, DNC number)] of dnc.delta.recent's lines since `since`, read back from its end (the folding
    writer keeps them in their times' order, as _RECENT matches them: lists/journal.py `keep_recent`): a look after a
    fold reads the lines it may have missed, not the window's."""
    out = []
    try:
        f = open(path, "rb")
    except (FileNotFoundError, TypeError):
        return out
    with f:
        for lines in _blocks_from_end(f):
            for line in reversed(lines):
                m = _RECENT.fullmatch(line)
                x = (float(m.group(3)), int(m.group(2), 16), int(m.group(1))) if m else _journal_line(line)
                if x is not None and 0 < x[2] < 1 << 63 and isfinite(x[0]):
                    if x[0] < since:
                        return out
                    out.append(x)
    return out


def _report_digests(path, since: float, margin: float) -> list:
    """[(time, digest, None)] of the 5656 reports in reports.jsonl since `since`, read back from the file's end
    until a report older than `since - margin` (reports come in about the order of their times), at most
    _MAX_READ bytes."""
    out = []
    try:
        f = open(path, "rb")
    except (FileNotFoundError, TypeError):
        return out
    with f:
        for lines in _blocks_from_end(f, _MAX_READ):
            older = False
            for x in map(_report_line, lines):
                if x is not None:
                    older = older or x[0] < since - margin
                    if x[0] >= since and x[1] is not None:
                        out.append(x)
            if older:
                break
    return out
