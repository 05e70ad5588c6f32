"""The 5656 report store: `reports.jsonl` in the data dir, one JSON object per report.

Fields: reporter, reported, content, time (ISO-8601), kind (S = SMS spam, V = call spam,
FW = an advertiser's copy of its advertisement), label (null until an analyst labels it
"spam" or "ham"; `telfilter ml train --data reports.jsonl` reads labelled ones), and parts_id for a
report sent in several parts (the journalled parts it was put together from: smpp_proxy/mo_journal.py).
`ReportIndex` answers "how many distinct reporters named this number in the last D days".
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from array import array
from collections import OrderedDict
from datetime import datetime
from hashlib import blake2b
from pathlib import Path

from ..durable import append_all, ends_in_newline, fsync_dir, rename_in
from ..numbers import format_number
from ..rules.slots import value_fp

log = logging.getLogger("telfilter")


# At most this many reported numbers are tracked; past it the least recently reported one is
# forgotten (the dict is ordered by last report). 1M numbers is ~280 MB with one reporter each
# (275-281 B measured at 1M, 287-305 B at 250k, 292-318 B at 125k; at most BYTES_PER_NUMBER: OrderedDict slot and link, int key, `array`; measured with tracemalloc after 3M
# reports of distinct numbers; ~217 B when the bound is first reached, but once full every report
# deletes a number and the resize that clears the deleted slots sizes the table for 3x the live ones)
# and ~0.53 GB if every one held the full 32 reporters (estimated: 248 B more of `array` a number): a bound a 5656 node can afford, well above the distinct numbers
# genuine reports name in 90 days, and an attacker needs 50,000 reporters a day (see below)
# to push genuine entries out at that rate.
MAX_REPORTED_NUMBERS = 1_000_000
# Numbers not reported for this many days are dropped from the index, and a start-up indexes this window of
# reports.jsonl: a rule's `reported = {days = D}` can count no further back (rules/stateful.py refuses a longer D).
REPORT_RETAIN_DAYS = 90
BYTES_PER_NUMBER = 320            # one reporter, at the bound in steady traffic (tests/test_state.py)
# At most this many (reporter, number) pairs a reporter can add to the index per UTC day: a
# subscriber rarely reports more than a few spammers a day, and SENDER_REPORTED needs several
# distinct reporters anyway, so one reporter naming thousands of numbers adds only memory.
# Reports past it are still stored in reports.jsonl by the caller (analysts see them), not
# indexed; a report refreshing a pair already indexed is not counted and always applies.
MAX_NEW_PER_REPORTER_DAY = 20
# Today's new pairs per reporter are counted in a fixed table of one-byte counters indexed by the
# reporter's fingerprint (4 MiB whatever the number of reporters; it was a dict growing ~81 B a
# reporter within a day): two reporters sharing a counter only make the cap stricter for both, and
# at a million distinct reporters in a day ~21% of them share theirs with another (1 - e^-0.24).
REPORTER_DAY_SLOTS = 1 << 22


class ReportIndex:
    """Per reported number, its most recent distinct reporters and when each last reported.

    Memory is bounded on every axis: per number at most `per_number` reporters (32-bit
    fingerprints with their last report second, in a flat `array`, least recent first), so a
    count is exact up to that many; numbers not reported for `retain_days` are dropped from
    the front of the insertion-ordered dict (a re-reported number moves to the end), O(1)
    amortised per report; at most `max_numbers` numbers (the least recently reported evicted
    first); a reporter adds at most `per_reporter_day` new (reporter, number) pairs a UTC day
    (today's counts in REPORTER_DAY_SLOTS one-byte counters by fingerprint, zeroed when the day
    changes).
    Two reporters sharing a fingerprint (2^-32 per pair) count once. Replaying reports.jsonl
    in order applies the same caps, so a restarted node indexes the same reports.
    """

    def __init__(self, retain_days: float = REPORT_RETAIN_DAYS, per_number: int = 32,
                 max_numbers: int = MAX_REPORTED_NUMBERS, per_reporter_day: int = MAX_NEW_PER_REPORTER_DAY):
        self.retain = retain_days * 86400.0
        self.per_number = per_number
        self.max_numbers = max_numbers
        if not 0 < per_reporter_day < 256:
            raise ValueError("per_reporter_day must be 1..255 (one-byte counters)")
        self.per_reporter_day = per_reporter_day
        # number -> [fp, second, fp, second, ...]; ordered by last report (move_to_end), so the
        # stale ones are at the front (an OrderedDict pops its front in O(1); a dict does not)
        self.by_reported: OrderedDict[int, array] = OrderedDict()
        self._day = -1                       # the UTC day `_added` counts for
        self._added = bytearray(REPORTER_DAY_SLOTS)     # reporter fp slot -> new pairs added on `_day`
        self.refused = 0                     # reports not indexed: their reporter was over the day's cap

    def __len__(self) -> int:
        return len(self.by_reported)

    def add(self, reported: int, reporter, ts: float) -> bool:
        """Index one report; False when it was not (its reporter reached the day's cap, or named its own number)."""
        if str(reporter) == format_number(reported):
            # a report against oneself (a subscriber who took "S <so dien thoai>" for their own number, a call that
            # showed the callee's own number) is no subscriber's evidence against the number: with two others'
            # reports it stopped the number's messages. Kept in reports.jsonl for the analysts all the same
            return False
        d = self.by_reported
        fp, now = value_fp(str(reporter)), int(ts)
        row = d.get(reported)
        if row is None or fp not in row[0::2]:          # a new pair: counted against the reporter
            day = now // 86400
            if day > self._day:                          # a late report counts on the current day
                self._day = day
                self._added = bytearray(REPORTER_DAY_SLOTS)
            slot = fp & (REPORTER_DAY_SLOTS - 1)
            c = self._added[slot]
            if c >= self.per_reporter_day:
                self.refused += 1
                return False
            self._added[slot] = c + 1
        if row is not None:
            del d[reported]                  # re-inserted at the end
        pairs = row.tolist() if row is not None else []
        for j in range(0, len(pairs), 2):
            if pairs[j] == fp:
                del pairs[j:j + 2]
                break
        else:
            if len(pairs) >= 2 * self.per_number:
                del pairs[:2]
        last = pairs[-1] if pairs else 0
        pairs += (fp, now if now > last else last)
        d[reported] = array("I", pairs)
        if len(d) > self.max_numbers:        # one in, one out: the least recently reported
            d.popitem(last=False)
        horizon = ts - self.retain
        for _ in range(2):                    # two per report: a backlog from the file drains too
            n, oldest = next(iter(d.items()))
            if n == reported or oldest[-1] > horizon:
                break
            d.popitem(last=False)
        return True

    def distinct_reporters(self, reported: int | None, now: float, window: float) -> int:
        if reported is None:
            return 0
        row = self.by_reported.get(reported)
        if row is None:
            return 0
        horizon = now - window
        n = 0                           # (a loop, not a generator: `horizon` no cell at every call judged)
        for t in row[1::2]:
            if t > horizon:
                n += 1
        return n


class ReportStore:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "reports.jsonl"
        # one append at a time in this process: serve's 5656 writer thread and replication's (the
        # loop) would otherwise cut each other's line (ends_in_newline, the cut-back of a failed write)
        self._lock = threading.Lock()

    def append(self, rec: dict) -> None:
        self.append_many((rec,))

    def append_many(self, recs) -> None:
        """Append reports durably: one write and one fsync for all (any thread of this process)."""
        data = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in recs).encode()
        if not data:
            return
        with self._lock:
            self._append(data)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not ends_in_newline(fd):
                data = b"\n" + data     # a line a crash cut short ends here; these stay readable
            append_all(fd, data)
        finally:
            os.close(fd)
        if created:                      # the new file's directory entry, durable like its first line
            fsync_dir(self.path.parent)

    def announce(self, recs) -> None:
        """Reports written by `append_many`, now in force (replication publishes them: PublishingReports)."""

    def parts_recorded(self, ids, offset: int) -> set:
        """Which of `ids` (5656 messages put together from journalled parts, smpp_proxy/mo_journal.py) a report
        line names as its `parts_id`, reading from byte `offset` (where the file ended when their first part was
        journalled; the whole file when it is shorter now) to the end: a crash between a report and its parts'
        marker left them both."""
        want, found = set(ids), set()
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return found
        with f:
            size = f.seek(0, os.SEEK_END)
            f.seek(offset if 0 <= offset <= size else 0)
            if offset and offset <= size:
                f.seek(offset - 1)
                f.readline()                # (from the line that starts at or after the offset)
            for line in f:
                if b'"parts_id"' not in line:
                    continue
                try:
                    pid = json.loads(line).get("parts_id")
                except (ValueError, AttributeError):
                    continue
                if isinstance(pid, str) and pid in want:
                    found.add(pid)
        return found

    def load_index(self) -> ReportIndex:
        """The index as the reports in force give it: reports.jsonl replayed in order, from where the last
        start-up found that every line before was out of the index's window (`reports.jsonl.start`, a
        checkpoint this writes: offset, a time every line before it is older than, the file's inode and the
        digest of the bytes before the offset), so a start-up reads the window and what came since the last
        one, not the file's whole history. A checkpoint that does not match the file is ignored (the whole
        file is read); lines before the offset are skipped only when their bound is out of the window."""
        from ..numbers import normalise_number
        idx = ReportIndex()
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return idx
        with f:
            start, bound = self._checkpoint(f)
            newest = _newest(f)
            # (a report dated ahead of the clock, from `check` or a peer whose clock runs ahead, must not move the
            # checkpoint past reports still in the window: the newest time counted is at most now + a day)
            now = time.time()
            cutoff = float("inf") if newest is None else min(newest, now + 86400) - idx.retain - SEEK_MARGIN
            if bound > now - idx.retain:
                start, bound = 0, float("-inf")     # (a checkpoint from a clock that ran ahead: not trusted)
            first = None                        # the first line read with a time not before the cutoff
            pos = f.seek(start)
            for line in f:
                at, pos = pos, pos + len(line)
                try:
                    r = json.loads(line)
                    ts = _timestamp(r["time"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                if first is None and ts >= cutoff:
                    first = at
                try:
                    if r.get("kind") not in ("S", "V"):
                        continue
                    n = normalise_number(str(r["reported"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
                if n is not None:
                    idx.add(n, str(r.get("reporter")), ts)
            if first is not None and first > start and bound < cutoff:
                self._save_checkpoint(f, first, cutoff)
        return idx

    @property
    def _checkpoint_path(self) -> Path:
        return self.path.with_name(self.path.name + ".start")

    def _checkpoint(self, f) -> tuple[int, float]:
        """(offset, bound): every line before `offset` has a time before `bound`; (0, -inf) when there is no
        checkpoint or it does not match the file."""
        try:
            off, bound, ino, digest = self._checkpoint_path.read_text().split()
            off, bound = int(off), float(bound)
            if int(ino) != os.fstat(f.fileno()).st_ino or not 0 < off <= os.fstat(f.fileno()).st_size:
                return 0, float("-inf")
            f.seek(max(0, off - _DIGEST_BYTES))
            if blake2b(f.read(off - f.tell()), digest_size=16).hexdigest() != digest:
                return 0, float("-inf")
            return off, bound
        except (OSError, ValueError):
            return 0, float("-inf")

    def _save_checkpoint(self, f, off: int, cutoff: float) -> None:
        """Every line before `off` is older than `cutoff` (out of every window a later start-up needs): written
        for the next start-up (atomically; a failure only makes it read more)."""
        try:
            f.seek(max(0, off - _DIGEST_BYTES))
            digest = blake2b(f.read(off - f.tell()), digest_size=16).hexdigest()
            rename_in(self._checkpoint_path, f"{off} {cutoff:.3f} {os.fstat(f.fileno()).st_ino} {digest}\n".encode(),
                      self._checkpoint_path.with_name(f"{self._checkpoint_path.name}.{os.getpid()}.tmp"))
        except OSError as e:                    # (a read-only data dir)
            log.warning("%s: start-up checkpoint not written: %s", self._checkpoint_path, e)


# A checkpoint is taken this far before the index's window (retain_days) from the newest report, so a
# start-up after a clock step back or with windows up to that much longer still finds its reports.
SEEK_MARGIN = 7 * 86400
_DIGEST_BYTES = 256             # the bytes before a checkpoint's offset it keeps a digest of


_TAIL = 1 << 16                 # bytes of the file's end read for its newest report's time


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _newest(f) -> float | None:
    """The latest time among the reports in the last _TAIL bytes (a report replicated late may be older than the
    lines before it; one newer than these only makes the checkpoint an earlier one), None if none reads."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _TAIL))
    if size > _TAIL:
        f.readline()
    best = None
    for line in f.read().splitlines():
        try:
            t = _timestamp(json.loads(line)["time"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if best is None or t > best:
            best = t
    return best
