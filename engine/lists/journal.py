"""The DNC delta journal, and the locks `serve` and the CLI both honour.

Theory of operation: `serve` applies a subscriber's `DK DNC` / `HUY DNC` in memory and appends
one JSON line to `lists/dnc.delta`, fsynced before the confirmation goes out. An offline writer
(the CLI's `lists import/add/remove`) folds the journal into a new dnc snapshot. Two flock(2)
locks on files in the lists directory keep them from losing each other's changes:

- `journal.lock` is held for a few system calls: by every journal append, and by a writer while
  it reads the journal and while it installs its snapshot. It is never held while a snapshot is
  built, so `serve` never waits behind an import.
- `write.lock` is held by an offline writer for its whole read-modify-write, so two CLI
  commands cannot overwrite each other's snapshot. `serve` only tries it (never waits), in a
  worker thread, to fold a journal grown past JOURNAL_COMPACT_BYTES into the snapshot, so
  the journal a start-up replays stays bounded even when no operator ever writes.

A journal may open with a header line `{"gen": "<hex>"}` naming its generation. A writer reads
the journal up to the end of its last whole line (offset X), builds the new snapshot and records
`(gen, X)` in it; then, under `journal.lock`, renames the snapshot in and replaces the journal
with the lines appended after X, under a fresh generation. A reader skips the first X bytes of a
journal whose generation is the one the snapshot names (a crash between the two renames) and
applies all of any other. So a line appended at any moment is in the snapshot or in the journal,
never in neither and never applied twice. Lines that cannot be read are not dropped: the writer
moves them to `dnc.delta.rejected` and reports each one as file:line.

A fold takes 5656 commands' lines out of the journal, and with them the digests by which serve knows a copy the SMSC
delivers again (smpp_proxy/mo_redelivery.py). The writer keeps those of the last RECENT_KEEP seconds in
`dnc.delta.recent` (`prepare_recent` under the write lock, renamed in under the journal lock before the journal is
rewritten): the lines of the folds
before that are still within the window and the new fold's, whole and fsynced, at most RECENT_MOST. Its lines hold no
`op` (a number, a digest, a time): never read as changes (the lists load reads `dnc.delta` and, to fall back,
`dnc.delta.prev`, whose lines it replays), so two folds within the window no longer lose a digest.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path

from .csvio import parse_channel
from ..durable import append_all, create_new, ends_in_newline, fsync_dir, rename_in

JOURNAL_COMPACT_BYTES = 4 << 20          # ~60,000 changes
MAX_NUMBER = 10 ** 15 - 1                # E.164: at most 15 digits
# seconds a 5656 command's digest stays in `dnc.delta.recent` after a fold took its line out of the journal: at least
# smpp_proxy/mo_redelivery.py's WINDOW (a copy of it is known for that long)
RECENT_KEEP = 600.0
RECENT_MOST = 100_000                    # lines `dnc.delta.recent` keeps at most, the newest (~95 B each: 9.5 MB)
_REORDERED = 60.0   # seconds a journal line's time may precede an earlier line's (written in their fsync's order)


@contextmanager
def flocked(path: Path, wait: bool = True):
    """Hold an exclusive flock on `path` (created if missing) for the `with` body; yields
    False instead of waiting when `wait` is false and someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)             # closing the descriptor releases the lock


@dataclass
class JournalRead:
    gen: str | None = None        # the header's generation; None for a journal without one
    end: int = 0                  # byte offset just past the last whole line read
    ops: list = field(default_factory=list)       # (op, number, channel) in order
    bad: list = field(default_factory=list)       # (line number, raw bytes) of unreadable lines


def read_journal(path: Path, mark: tuple | None = None) -> JournalRead:
    """Parse the whole lines not already folded into a snapshot whose journal mark is
    `(gen, offset)`. An unterminated last line is left unread: it is either being written right
    now or a write cut short by a crash (never confirmed, and ended by the next append). Only the
    header and the bytes after the mark are read (serve catches up every second: the cost is the
    new lines', not the journal's); the lines before the mark are counted only to name a bad line."""
    out = JournalRead()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return out
    with f:
        first = f.readline()
        if first.startswith(b'{"gen"') and first.endswith(b"\n"):
            try:
                out.gen = str(json.loads(first)["gen"])
            except (ValueError, KeyError, TypeError):
                pass      # not a header: read as a (bad) line below
        size = os.fstat(f.fileno()).st_size
        start = mark[1] if mark is not None and mark[0] == out.gen and 0 <= mark[1] <= size else 0
        f.seek(start)
        data = f.read()
        stop = data.rfind(b"\n") + 1
        out.end = start + stop
        lineno = None                 # the line number of data's first line: counted when first needed
        for i, raw in enumerate(data[:stop].splitlines()):
            if start == 0 and i == 0 and out.gen is not None:
                continue              # the header
            try:
                op = json.loads(raw)
                kind, number = op["op"], op["number"]
                if kind not in ("add", "remove"):
                    raise ValueError(kind)
                # what append_lines writes: an E.164 int. Anything else (a string, a bool, a float, a value
                # a uint64 bitmap cannot hold) is a damaged line, kept and reported, never a crash on load
                if type(number) is not int or not 0 < number <= MAX_NUMBER:
                    raise ValueError(number)
                out.ops.append((kind, number, parse_channel(op["channel"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                if raw.strip():
                    if lineno is None:
                        lineno = _lines_before(f, start) + 1
                    out.bad.append((lineno + i, raw))
    return out


def _lines_before(f, offset: int) -> int:
    f.seek(0)
    n, left = 0, offset
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        n += chunk.count(b"\n")
        left -= len(chunk)
    return n


def journal_header(gen: str) -> bytes:
    return json.dumps({"gen": gen}).encode() + b"\n"


def read_journal_gen(path: Path) -> str | None:
    """The generation in a journal's header (None: no header, or no journal)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except FileNotFoundError:
        return None
    if first.startswith(b'{"gen"') and first.endswith(b"\n"):
        try:
            return str(json.loads(first)["gen"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def append_line(path: Path, lock: Path, op: str, number: int, channel: str) -> None:
    """Append one change durably, under the journal lock."""
    append_lines(path, lock, [(op, number, channel)])


def append_lines(path: Path, lock: Path, changes) -> tuple | None:
    """Append changes [(op, number, channel)] durably with one write and one fsync (a batch
    replicated from another node), under the journal lock. Returns where the journal then ends,
    (generation, offset): a reader whose mark is there has read these lines (Lists.journal_mark).
    A change may carry a fourth item, a dict of fields its line holds too (a 5656 command's MO digest
    and time: smpp_proxy/mo_redelivery.py); `read_journal` reads op, number and channel alone."""
    line = "".join(json.dumps({"op": c[0], "number": c[1], "channel": c[2], **(c[3] if len(c) > 3 else {})}) + "\n"
                   for c in changes).encode()
    if not line:
        return None
    with flocked(lock):
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not ends_in_newline(fd):
                line = b"\n" + line      # end a line a crash cut short, or this one is lost with it
            append_all(fd, line)         # all or nothing: the caller confirms only after this
            end = os.fstat(fd).st_size
        finally:
            os.close(fd)
        gen = read_journal_gen(path)
        if created:
            # the file's fsync does not make its new directory entry durable: without this a power cut
            # could lose the whole journal, and with it the first registrations confirmed into it
            # (and the lists directory's own entry, when flocked() has just made it)
            fsync_dir(path.parent)
            fsync_dir(path.parent.parent)
    return gen, end


def keep_folded(path: Path, consumed: int) -> None:
    """Keep the journal's first `consumed` bytes (its header and the lines the new dnc snapshot folded in)
    as `<journal>.prev`, fsynced, before the journal is rewritten without them: the new generation's
    `.prev` snapshot lacks those lines, and a load that has to fall back to it (the new one damaged on
    disk) reads them from here. Without it, 5656 registrations folded into a generation that is then
    refused were in no file at all. The caller holds the journal lock."""
    try:
        with open(path, "rb") as f:
            head = f.read(consumed)
    except FileNotFoundError:
        return
    _replace_durably(path.with_name(path.name + ".prev"), head)


def keep_recent(path: Path, consumed: int, now: float | None = None, keep: float = RECENT_KEEP,
                most: int = RECENT_MOST) -> None:
    """`<journal>.recent` (module text): `prepare_recent`, then `install_recent`."""
    install_recent(prepare_recent(path, consumed, now, keep, most), path)


def prepare_recent(path: Path, consumed: int, now: float | None = None, keep: float = RECENT_KEEP,
                   most: int = RECENT_MOST) -> Path | None:
    """The next `<journal>.recent` written whole and fsynced in a temporary file beside it (returned; None while no
    line is to be kept: not created): its lines whose time is within `keep` seconds of `now`, then those of the
    journal's first `consumed` bytes (the lines this fold takes out), at most `most`, the newest. The caller holds
    the write lock (under which alone both files change: the journal's first `consumed` bytes, and this file), not
    the journal lock: at RECENT_MOST lines and a 4.5 MB fold, 0.4 s that every 5656 command's append waited."""
    recent = path.with_name(path.name + ".recent")
    try:
        with open(recent, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        old = None
    try:
        with open(path, "rb") as f:
            head = f.read(consumed)
    except FileNotFoundError:
        head = b""
    since = (time.time() if now is None else now) - keep
    kept = _recent_lines(head, since, most)
    if old:
        # (its own lines, in their times' order but for _REORDERED: where the window starts found by bisection)
        lines = old.splitlines(keepends=True)
        kept += [(at, x) for x in lines[bisect_right(lines, since - _REORDERED, key=_recent_at):]
                 if (at := _recent_at(x)) > since]
    if old is None and not kept:
        return None
    # (each line once: a writer killed after this file's rename and before the journal's rewrite left the lines it
    # took in the journal, and the next fold takes them again)
    kept = sorted(set(kept))
    tmp = recent.with_name(recent.name + f".tmp{os.getpid()}")
    try:
        with os.fdopen(create_new(tmp), "wb") as f:
            f.write(b"".join(x for _, x in kept[-most:]))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def install_recent(tmp: Path | None, path: Path) -> None:
    """`prepare_recent`'s file (None: none) renamed in as `<journal>.recent` (made durable by the journal's rewrite
    after it). The caller holds the journal lock (the one writer of both)."""
    if tmp is not None:
        os.replace(tmp, path.with_name(path.name + ".recent"))


_LINE = re.compile(rb'\{"op": "(?:add|remove)", "number": ([0-9]{1,18}), "channel": "[A-Z]*", '
                   rb'"mo_digest": "([0-9a-f]{16})", "at": ([0-9]{1,12}(?:\.[0-9]{1,6})?)\}')


def _recent_lines(data: bytes, since: float, most: int) -> list:
    """[(time, `.recent` line)], newest first, of the 5656 commands' lines in journal bytes `data` since `since`, at
    most `most`, read from its end (lines come in about their times' order: the read stops at one _REORDERED seconds
    older than `since`). A line as append_lines writes it is matched by _LINE, any other parsed as JSON."""
    out = []
    for raw in reversed(data.split(b"\n")):
        if len(out) >= most:
            break
        if b'"mo_digest"' not in raw:
            continue                        # (no 5656 command's line: not parsed)
        m = _LINE.fullmatch(raw)
        if m is not None:
            number, d, at = m.group(1), m.group(2), float(m.group(3))
        else:
            try:
                r = json.loads(raw)
                at, d, number = float(r["at"]), r["mo_digest"], r["number"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if not isinstance(d, str) or type(number) is not int or not isfinite(at):
                continue                    # (a damaged line: its reader would skip it too)
            number, d, at = str(number).encode(), json.dumps(d)[1:-1].encode(), at
        if at < since - _REORDERED:
            break
        if at > since:
            out.append((at, b'{"number": %s, "mo_digest": "%s", "at": %s}\n' % (number, d, repr(at).encode())))
    return out


def _recent_at(line: bytes) -> float:
    """The time of a `.recent` line (the last field, as `_recent_lines` writes it; 0 for a line not so)."""
    try:
        return float(line[line.rindex(b":") + 1:line.rindex(b"}")])
    except ValueError:
        return 0.0


def replace_with_tail(path: Path, consumed: int, gen: str) -> None:
    """Replace the journal by the bytes after `consumed` under a new generation header.
    The caller holds the journal lock."""
    try:
        with open(path, "rb") as f:
            f.seek(consumed)
            tail = f.read()
    except FileNotFoundError:
        tail = b""
    _replace_durably(path, journal_header(gen) + tail)
    fsync_dir(path.parent)


def _replace_durably(path: Path, data: bytes) -> None:
    """`path` holds `data`, whole (durable.rename_in), its temporary file named as ListStore's sweep finds it."""
    rename_in(path, data, path.with_name(path.name + f".tmp{os.getpid()}"))


def keep_rejected(path: Path, bad: list) -> Path:
    """Append unreadable journal lines to `<journal>.rejected` (fsynced) before they leave the journal."""
    rej = path.with_name(path.name + ".rejected")
    with open(rej, "ab") as f:
        for _, raw in bad:
            f.write(raw.rstrip(b"\n") + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return rej
