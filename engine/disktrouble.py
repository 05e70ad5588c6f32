"""A failing disk, said once and counted: what each durable writer reports when a write fails or works again.

A full (ENOSPC) or read-only (EROFS) data disk makes every write of a writer fail, and some writers write per
message (a held receipt, a 5656 part) or every 0.25 s (the state journal): a log line per failure was ~85 lines
a second under a 10 msg/s probe (1,016 lines for held receipts alone in 12 s), burying everything else. Each
writer instead says its first failure at once, then at most one line every REPORT_S with how many failed since,
and that writes work again (at most as often); `/metrics` exports the counts (`telfilter_disk_write_errors_total
{writer}`) and whether the writer's last write failed (`telfilter_disk_failing{writer}`), the signal to alert on.

Bounded: one entry per writer name, and the names are the literals below (WRITERS), not data.
Updated from the event loop and from writer threads: plain int and bool stores (under the GIL each is whole;
a count read mid-update is one behind, which a scrape tolerates).
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("telfilter")

REPORT_S = 10.0
# /healthz stays 503 until no write failed for HOLD_S: a disk at the edge of full takes one write and refuses the
# next (several flips a second), and a health check read at the last write only answered 200 and 503 by turns
HOLD_S = 10.0
# state_snapshot: the state store's background snapshot (its forked writer, engine/state/forksnap.py), failed
# when the child fails (a full disk, a read-only one), ok again when a later snapshot is installed
WRITERS = ("state_journal", "state_snapshot", "shortcode", "shortcode_parts", "held_receipts", "message_ids",
           "verdict_log")


class DiskTrouble:
    def __init__(self, writer: str, clock=time.monotonic):
        self.writer = writer
        self.clock = clock
        self.errors = 0             # failed writes since start (counter)
        self.failing = False        # the last write failed
        self._unsaid = 0            # failures since the last line
        self._said = self._said_ok = -1e18
        self._last_failed = -1e18   # when the last write failed (clock)
        self._ok_unsaid = False     # writes work again, not said yet

    def failed(self, err, what: str) -> None:
        """A write failed: `what` it means (e.g. "a receipt not held: the SMSC delivers it again")."""
        self.errors += 1
        self._unsaid += 1
        self.failing = True
        self._ok_unsaid = False
        now = self._last_failed = self.clock()
        # by time, not by change: a disk at the edge of full takes one write and refuses the next (the probe's
        # ext4 flipped several times a second), and a line per flip is a line per message again
        if now - self._said >= REPORT_S:
            more = f" ({self._unsaid} failed writes since the last such line)" if self._unsaid > 1 else ""
            log.error("disk trouble, %s: %s (%s)%s; said again at most every %.0f s", self.writer, what,
                      getattr(err, "strerror", None) or err, more, REPORT_S)
            self._said, self._unsaid = now, 0

    def troubled(self) -> bool:
        """For /healthz: the last write failed, or one failed less than HOLD_S ago (no flapping at a disk's edge;
        `failing`, telfilter_disk_failing, is the last write's alone)."""
        return self.failing or self.clock() - self._last_failed < HOLD_S

    def ok(self) -> None:
        """A write worked: after failures, said (at most every REPORT_S: said at a later write if not now)."""
        if self.failing:
            self.failing = False
            self._ok_unsaid = True
        if self._ok_unsaid:
            now = self.clock()
            if now - self._said_ok >= REPORT_S:
                log.warning("disk trouble over, %s: writes work again (%d failed since start)", self.writer,
                            self.errors)
                self._said_ok, self._ok_unsaid = now, False


_TROUBLE = {name: DiskTrouble(name) for name in WRITERS}


def trouble(writer: str) -> DiskTrouble:
    return _TROUBLE[writer]


def all_writers() -> list[DiskTrouble]:
    return [_TROUBLE[n] for n in WRITERS]
