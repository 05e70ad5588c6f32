"""Streaming readers for verdict logs (`serve --log`) and the 5656 report store.

A log is read one line at a time from plain, gzip, bzip2 or xz files (recognised by their
magic bytes, so a rotated `verdicts.log.3.gz` or a renamed one both work); nothing holds more
than one line. A line that is not a JSON object with `ts`, `kind` and `action` is counted
and reported as `file:line: why`, and the reading goes on. The progress bar follows the
bytes read from disk (compressed bytes for a compressed file), so its total is known
without decompressing first.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .logfiles import _MAGIC, _held, _regular, hold_room

ACTIONS = ("allow", "tag", "drop", "refuse")
MAX_SHOWN = 20          # malformed lines quoted in full; the rest are only counted


@dataclass
class Malformed:
    """Bad input lines: all counted, the first MAX_SHOWN kept as `file:line: why`."""
    count: int = 0
    shown: list = field(default_factory=list)

    def add(self, where: str, why: str, always: bool = False) -> None:
        """`always`: shown past MAX_SHOWN too (a file not read whole: 20 bad lines before it hid it)."""
        self.count += 1
        if always or len(self.shown) < MAX_SHOWN:
            self.shown.append(f"{where}: {why}")


def open_text(path: str, raw):
    """A text stream over `raw` (a binary file), decompressing by magic bytes. Bytes that are
    not UTF-8 become U+FFFD: the record still counts, and every output stays valid UTF-8."""
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    for magic, cls in _MAGIC:
        if head.startswith(magic):
            return io.TextIOWrapper(cls(raw), encoding="utf-8", errors="replace")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def parse_ts(v, field: str = "ts") -> datetime:
    """A record's time, `field` its name there; a ValueError names the field and the value (Python's own
    "Invalid isoformat string: 'nope'" named neither the field nor, by its words, a time)."""
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00")) if isinstance(v, str) else None
    except ValueError:
        t = None
    got = "missing" if v is None else f"got {v!r:.80}"
    if t is None or t.tzinfo is None:
        raise ValueError(f"field {field}: must be an ISO-8601 time with an offset, {got}")
    try:
        t.astimezone(timezone.utc)          # year 1 at +14:00 has no UTC time: a bad line, not a crash later
    except OverflowError:
        raise ValueError(f"field {field}: {v!r:.80} is outside the representable range") from None
    return t


MAX_LINE = 1 << 20      # characters; a longer line (a crash's block of NULs, a runaway writer) is malformed
_SYMBOL = re.compile(r"[A-Z0-9_]{1,64}")


def _lines(f):
    """The lines of text stream `f`, each read with a bound: a line over MAX_LINE is skipped to its end and
    given as None, so memory stays bounded whatever the input."""
    while True:
        line = f.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while True:
                rest = f.readline(MAX_LINE)
                if not rest or rest.endswith("\n"):
                    break
            yield None
            continue
        yield line


_TOO_LONG = f"line longer than {MAX_LINE} characters"

# what a line's checks raise for a line that is not a record (a TypeError or AttributeError: a field of the wrong
# JSON type; RecursionError: nested too deeply for json.loads)
_BAD_LINE = (ValueError, TypeError, AttributeError, RecursionError)


def _object(line: str) -> dict:
    """The JSON object on `line`, else ValueError (json.JSONDecodeError when it is no JSON)."""
    rec = json.loads(line)
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    return rec


def _why(e: Exception) -> str:
    """What `Malformed` says of a line that raised `e` (one of _BAD_LINE)."""
    return f"not JSON: {e}" if isinstance(e, json.JSONDecodeError) else str(e)


BAR_FROM = 8 << 20      # bytes of input (compressed ones for a compressed log) from which a bar is shown


def _progress(total: int | None):
    try:
        from tqdm import tqdm
    except ImportError:           # the bar is a convenience; the report does not need it
        return None
    # disable=None: no bar when stderr is not a terminal (cron, tests); total None: stdin, bytes read and their rate
    return tqdm(total=total, unit="B", unit_scale=True, desc="reading logs", disable=None, leave=False)


class _Progress:
    """Bytes read, drawn as a bar once the input is over BAR_FROM: from the start when its size is known, once that
    much is read from stdin (`zcat old/*.gz | telfilter report --log -` read for minutes with no bar)."""

    def __init__(self, total: int | None):
        self.total, self.read, self.bar = total, 0, None

    def update(self, n: int) -> None:
        self.read += n
        if self.bar is None and max(self.total or 0, self.read) > BAR_FROM:
            bar = _progress(self.total)
            self.bar, n = (False if bar is None else bar), self.read     # (a tqdm of no total has no truth value)
        if self.bar is not None and self.bar is not False:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None and self.bar is not False:
            self.bar.close()


class _Counted(io.RawIOBase):
    """A binary stream that counts the bytes read through it (stdin: a pipe has no position to ask)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b) or 0
        self.n += n
        return n

    def tell(self) -> int:
        return self.n


class _Damaged(Exception):
    def __init__(self, why: str, line: int):
        self.why, self.line = why, line


# the other input given in its place: each line was "field ts: must be an ISO-8601 time with an offset, missing"
_NOT_A_LOG = "a 5656 report store line (reports.jsonl), not a verdict log line: give the store as --reports"
_NOT_A_STORE = "a verdict log line, not a 5656 report store line (reports.jsonl): give the log as --log"


def _damage(path) -> str | None:
    """Why a gzip or xz log does not decompress whole (cut short, damaged: its CRC at the end), or None: one pass
    in C before its lines are read (~1% of the reading for gzip: inflate does not see every damage, and the garbage
    it gives until the CRC check at the end read as lines, some of them as records). bzip2 checks each block."""
    with open(path, "rb") as raw:
        head = raw.peek(6)[:6]
        cls = next((c for (magic, c) in _MAGIC if head.startswith(magic) and magic != b"BZh"), None)
        if cls is None:
            return None
        try:
            z = cls(raw)
            while z.read(1 << 20):
                pass
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            return f"{type(e).__name__}: {e}"
    return None


# the verdict log's records that are no verdict, and the text members each has (verdictlog.py write_sms_id,
# write_list_change): read and yielded, counted as no message
_TRAIL = {"sms_id": ("account", "sender", "recipient", "message_id"), "list": ("op", "list", "value", "by")}


def read_verdicts(paths, bad: Malformed, progress: bool = True, merged: bool = False):
    """Yield (ts, record) for every well-formed verdict line of `paths`, in file order; `merged`: in time order across
    the files, each file's own lines in its order (heapq.merge takes the earliest of the files' next lines: `verdicts
    --log verdicts.jsonl --log DATA/lists/changes.jsonl` shows an offline list change among the number's verdicts)."""
    hold_room(paths)
    total = sum(os.path.getsize(p) for p in paths if _regular(p))
    bar = _Progress(total if all(_regular(p) for p in paths) else None) if progress else None
    try:
        if bar is not None:
            bar.update(0)
        if merged and len(paths) > 1:
            from .logmerge import merged as merged_logs
            yield from merged_logs(paths, bad, bar)
        else:
            # each regular log from the file it named when the reading began: opened by name when reached, a
            # rotation meanwhile (`report --log verdicts.log*`, the live log first) gave .1's name to the live log
            # just read -- its lines counted twice, the old .1's not at all
            held = _held(paths)
            try:
                for i, p in enumerate(paths):
                    yield from _read_log(p, bad, bar, held.pop(i, None))
            finally:
                for fd in held.values():        # (logs not reached: the reader stopped early)
                    os.close(fd)
    finally:
        if bar is not None:
            bar.close()


def _record(line: str):
    """(time, record) of a verdict-log line, else one of _BAD_LINE saying why it is none."""
    rec = _object(line)
    if "ts" not in rec and "action" in rec:
        raise ValueError("a verdict without a time, not a verdict log line (`check` prints "
                         "such lines; `report` reads what serve --log writes)")
    if "ts" not in rec and "reporter" in rec and "time" in rec:
        raise ValueError(_NOT_A_LOG)
    ts = parse_ts(rec.get("ts"))
    kind = rec.get("kind")
    if kind == "call_unsent":               # a call let through that never left
        parse_ts(rec.get("judged"), "judged")       # (its call line's ts: report/unsent.py)
        if type(rec.get("status")) is not int:
            raise ValueError("a call_unsent record's status is not an integer")
        return ts, rec
    if kind == "cancel":                    # an ad scheduled ahead cancelled at a DNC registration
        if type(rec.get("status")) is not int:      # (its message is counted by its own line)
            raise ValueError("a cancel record's status is not an integer")
        return ts, rec
    if kind in _TRAIL:                      # an SMSC's message_id; a list change (no verdicts)
        if not all(type(rec.get(k)) is str for k in _TRAIL[kind]):
            raise ValueError(f"a {kind} record without its " + ", ".join(_TRAIL[kind]))
        if "judged" in rec:                 # (an sms_id's: its line's ts, msgid_join.py)
            parse_ts(rec["judged"], "judged")
        return ts, rec
    if kind not in ("sms", "call") or rec.get("action") not in ACTIONS:
        raise ValueError("not a verdict record (kind sms|call, action allow|tag|drop|refuse)")
    hits = rec.get("hits", [])
    if not isinstance(hits, list):
        raise ValueError("hits is not a list")
    if not all(isinstance(h, dict) and isinstance(h.get("symbol"), str)
               and _SYMBOL.fullmatch(h["symbol"]) for h in hits):
        raise ValueError("a hit's symbol is not a rule symbol (A-Z, 0-9, _)")
    return ts, rec


def _read_log(p, bad: Malformed, bar, fd: int | None = None):
    """read_verdicts of one log; `fd`: the regular file `p` named when it was first looked at (logmerge.py), read
    from its start and closed here (a rotation since gave the name to another file)."""
    # `-`: stdin, e.g. `zcat old/*.gz | telfilter report --log -`; it, a FIFO and `<(xzcat …)` have no position to
    # ask (`Illegal seek`, which cut such a log at the bar's first look): their bytes are counted as they are read
    piped = fd is None and not _regular(p)
    inner = sys.stdin.buffer if p == "-" else open(p, "rb", buffering=0) if piped else None
    damaged = None          # (a pipe is read once: no first pass; one held open: through a duplicate, before it)
    if fd is not None:
        try:
            damaged = _damage(os.dup(fd))
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as e:        # (as one opened by name says it: an I/O error, not a traceback)
            os.close(fd)
            bad.add(f"{p}:1", f"unreadable from here on: {type(e).__name__}: {e}", always=True)
            return
    raw = io.BufferedReader(_Counted(inner), 1 << 16) if piped else open(p if fd is None else fd, "rb",
                                                                         buffering=1 << 16)
    try:
        f = open_text(p, raw)
        done = n = 0
        first_bad = None        # this file's first malformed line
        if fd is None and not piped:
            damaged = _damage(p)
        stop = None
        for n, line in enumerate(_lines(f), 1):
            if bar is not None and not n & 0x3FFF:         # every 16k lines
                pos = raw.raw.tell() if piped else raw.tell()
                bar.update(pos - done)
                done = pos
            if line is None:
                if damaged:
                    stop = n
                    break
                bad.add(f"{p}:{n}", _TOO_LONG)
                first_bad = first_bad or n
                continue
            if not line.strip():
                continue
            try:
                ts, rec = _record(line)
            except _BAD_LINE as e:
                if damaged:
                    stop = n
                    break
                bad.add(f"{p}:{n}", _why(e))
                first_bad = first_bad or n
                continue
            yield ts, rec
        if damaged:     # a damaged file read up to its first malformed line, the rest left out
            raise _Damaged(damaged, stop or n + 1)
        if bar is not None:
            bar.update((raw.raw.tell() if piped else os.fstat(raw.fileno()).st_size) - done)
    except _Damaged as e:
        bad.add(f"{p}:{e.line}", f"unreadable from here on: {e.why} (a first pass found the file damaged: "
                f"read up to its first malformed line, where the damage begins at the latest)", always=True)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        # a .gz cut short (a rotation in progress: EOFError) or damaged inside (a bad block: zlib.error,
        # which ended the report with a traceback): the lines before it counted, the one it broke in named
        # A .gz whose damage inflate did not see is known at its end (CRC check failed): its garbage read
        # meanwhile was malformed lines, the first of them where the damage begins at the latest
        since = (f" (damaged from line {first_bad} on at the latest, its first malformed line: the records "
                 f"read from there may be altered)") if first_bad else ""
        bad.add(f"{p}:{n + 1}", f"unreadable from here on: {type(e).__name__}: {e}{since}", always=True)
    finally:
        if p != "-":
            raw.close()
            if inner is not None:
                inner.close()


def read_reports(path: str, bad: Malformed):
    """Yield (ts, record) from a `reports.jsonl` (engine/lists/reports.py)."""
    with open(path, "rb") as raw:
        f = open_text(path, raw)
        for n, line in enumerate(_lines(f), 1):
            if line is None:
                bad.add(f"{path}:{n}", _TOO_LONG)
                continue
            if not line.strip():
                continue
            try:
                rec = _object(line)
                if "time" not in rec and "ts" in rec and "action" in rec:
                    raise ValueError(_NOT_A_STORE)
                ts = parse_ts(rec.get("time"), "time")
                if rec.get("kind") not in ("S", "V", "FW"):
                    raise ValueError(f"kind must be S, V or FW, got {rec.get('kind')!r}")
            except _BAD_LINE as e:
                bad.add(f"{path}:{n}", _why(e))
                continue
            yield ts, rec
