"""Several verdict logs read as one, in time order (`telfilter verdicts`: reader.read_verdicts(merged=True)), each
log's own lines in its order; a log is opened only when the lines reach the time of its first record, so rotated
logs, one after another in time, are read one or two at a time."""
from __future__ import annotations

import heapq
import itertools
import lzma
import os
import zlib
from collections import deque

from .logfiles import _regular, held_most
from .reader import _BAD_LINE, Malformed, _lines, _read_log, _record, open_text


def merged(paths, bad: Malformed, bar):
    """The logs' lines in time order, each log's own lines in its order (a log's next line goes in only once its
    previous one went out), the earlier log first at equal times. A log is opened only when the lines reach the time
    of its first line (read ahead, then closed): rotated logs, one after another in time, are read one or two at a
    time, not all at once (an open .xz holds its ~9 MB dictionary, a .bz2 ~3 MB: 90 days of them were ~800 MB).
    Stdin, and a log whose first time cannot be read, are opened at once. Each regular log stays open from that first
    look (a descriptor, no buffer or decompressor; at most logfiles.held_most() of them): the live log, read last, was
    opened by name after minutes of older ones, and a rotation meanwhile (logrotate's `create`) had given its name to
    a new empty file: its lines were lost, unsaid."""
    held: dict = {}         # log -> its descriptor from the first look, until it is read
    keep = held_most()
    firsts = []
    try:
        for i, p in enumerate(paths):
            t, fd = _first_time(p, len(held) < keep)
            if fd is not None:
                held[i] = fd
            firsts.append((t, i))
        waiting = deque(sorted((t, i) for t, i in firsts if t is not None))
        heap, order = [], itertools.count()

        def take(i, lines):
            for pair in lines:
                heapq.heappush(heap, (pair[0], i, next(order), pair, lines))
                return

        def opened(i):
            return _read_log(paths[i], bad, bar, held.pop(i, None))

        for t, i in firsts:
            if t is None:
                take(i, opened(i))
        while heap or waiting:
            while waiting and (not heap or waiting[0][0] <= heap[0][0]):
                i = waiting.popleft()[1]
                take(i, opened(i))
            if heap:
                _t, i, _n, pair, lines = heapq.heappop(heap)
                yield pair
                take(i, lines)
    finally:
        for fd in held.values():        # (logs not reached: the reader stopped early)
            os.close(fd)


_FIRST_LOOK = 1000      # lines read ahead for a log's first time


def _first_time(p, hold: bool = False):
    """(the time of log `p`'s first record (as _read_log takes it, within its first _FIRST_LOOK lines), else None
    (stdin or a pipe, opened at once); with `hold`, the descriptor of the regular file looked at, else None)."""
    if not _regular(p):
        return None, None
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, None           # (read when reached, it is said why)
    try:
        dup = os.dup(fd)
    except OSError:                 # (no descriptor left: read when reached, as one that could not be opened)
        os.close(fd)
        return None, None
    try:
        return _look(dup), (fd if hold else None)
    finally:
        if hold:
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            os.close(fd)


def _look(fd: int):
    try:
        with open(fd, "rb", buffering=1 << 16) as raw:
            for n, line in enumerate(_lines(open_text("", raw))):
                if n >= _FIRST_LOOK:
                    return None
                if line is None or not line.strip():
                    continue
                try:
                    return _record(line)[0]
                except _BAD_LINE:
                    continue
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
        return None         # (read whole, it is said where it breaks)
    return None
