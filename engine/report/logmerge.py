"""Several verdict logs read as one, in time order (`telfilter verdicts`: reader.read_verdicts(merged=True)), each
log's own lines in its order; a log is opened only when the lines reach the time of its first record, so rotated
logs, one after another in time, are read one or two at a time."""
from __future__ import annotations

import heapq
import itertools
import lzma
import zlib
from collections import deque

from .reader import _BAD_LINE, Malformed, _lines, _read_log, _record, _regular, open_text


def merged(paths, bad: Malformed, bar):
    """The logs' lines in time order, each log's own lines in its order (a log's next line goes in only once its
    previous one went out), the earlier log first at equal times. A log is opened only when the lines reach the time
    of its first line (read ahead, then closed): rotated logs, one after another in time, are read one or two at a
    time, not all at once (an open .xz holds its ~9 MB dictionary, a .bz2 ~3 MB: 90 days of them were ~800 MB).
    Stdin, and a log whose first time cannot be read, are opened at once."""
    firsts = [(_first_time(p), i) for i, p in enumerate(paths)]
    waiting = deque(sorted((t, i) for t, i in firsts if t is not None))
    heap, order = [], itertools.count()

    def take(i, lines):
        for pair in lines:
            heapq.heappush(heap, (pair[0], i, next(order), pair, lines))
            return

    for t, i in firsts:
        if t is None:
            take(i, _read_log(paths[i], bad, bar))
    while heap or waiting:
        while waiting and (not heap or waiting[0][0] <= heap[0][0]):
            i = waiting.popleft()[1]
            take(i, _read_log(paths[i], bad, bar))
        if heap:
            _t, i, _n, pair, lines = heapq.heappop(heap)
            yield pair
            take(i, lines)


_FIRST_LOOK = 1000      # lines read ahead for a log's first time


def _first_time(p):
    """The time of log `p`'s first record (as _read_log takes it, within its first _FIRST_LOOK lines), else None
    (stdin or a pipe, opened at once)."""
    if not _regular(p):
        return None
    try:
        with open(p, "rb", buffering=1 << 16) as raw:
            for n, line in enumerate(_lines(open_text(p, raw))):
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
