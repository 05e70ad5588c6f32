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
import threading
import time
import weakref

from .servicelog import Trouble

log = logging.getLogger("telfilter")

REPORT_S = 10.0
# /healthz stays 503 until no write failed for HOLD_S: a disk at the edge of full takes one write and refuses the
# next (several flips a second), and a health check read at the last write only answered 200 and 503 by turns
HOLD_S = 10.0
# state_snapshot: the state store's background snapshot (its forked writer, engine/state/forksnap.py), failed
# when the child fails (a full disk, a read-only one), ok again when a later snapshot is installed
WRITERS = ("state_journal", "state_snapshot", "shortcode", "shortcode_parts", "held_receipts", "message_ids",
           "verdict_log", "scheduled_ads")


class DiskTrouble(Trouble):
    """One durable writer's failed writes, said as servicelog.Trouble says any trouble, in a disk's words."""

    def __init__(self, writer: str, clock=time.monotonic):
        super().__init__(writer, every=REPORT_S, clock=clock, logger=log)
        self.writer = writer
        # writers reopened away from (the verdict log's at SIGUSR2): what they fail or write from now on is not this
        # trouble's. Weak: each is let go once its thread has drained it. The lock makes "is it retired?" and the
        # count one step against `fresh` on the loop (a check, then the count, let a retired writer count in between)
        self._retired = weakref.WeakSet()
        self._retiring = threading.Lock()

    @property
    def errors(self) -> int:
        """Failed writes since start (telfilter_disk_write_errors_total)."""
        return self.count

    def fresh(self, retired=None) -> None:
        """A new file in place of the failing one (the verdict log reopened at SIGUSR2): nothing has failed on it
        yet. Not a write that worked (no "writes work again" line): /healthz still holds 503 for HOLD_S after the
        last failure, and the new file's first write decides. Else a reopen's failure, kept by the writer reopened
        away from (whose own failures it does not count), held 503 until the new writer wrote a line: for ever on a
        node a load balancer had drained for that 503. After failures, the next write that works says that writes
        work again (`ok` finds `failing` cleared here: the end of the trouble went unsaid). `retired`: the writer
        reopened away from; its failures and writes that work no longer count (passed as `writer=` to `failed` and
        `ok`): one failing before its retire began set `failing` again, 503 for a rotated file while the new one
        took every line; one that worked ended the new file's trouble."""
        with self._retiring:
            if retired is not None:
                self._retired.add(retired)
            if self.failing:
                self.failing, self._ok_unsaid = False, True

    def failed(self, err, what: str, writer=None) -> None:
        """A write failed: `what` it means (e.g. "a receipt not held: the SMSC delivers it again"). `writer`: the
        writer it failed in, when one can be reopened away from (`fresh`): not counted once it has been."""
        if writer is None:
            n = self._failure()
        else:
            with self._retiring:
                if writer in self._retired:
                    return
                n = self._failure()
        if n:
            more = f" ({n} failed writes since the last such line)" if n > 1 else ""
            log.error("disk trouble, %s: %s (%s)%s; said again at most every %.0f s", self.writer, what,
                      getattr(err, "strerror", None) or err, more, REPORT_S)

    def troubled(self) -> bool:
        """For /healthz: the last write failed, or one failed less than HOLD_S ago (no flapping at a disk's edge;
        `failing`, telfilter_disk_failing, is the last write's alone)."""
        return self.failing or self.clock() - self.last_failed < HOLD_S

    def ok(self, writer=None) -> None:
        """A write worked: after failures, said (at most every REPORT_S: said at a later write if not now). `writer`:
        as `failed`'s."""
        if writer is None:
            say = self._over()
        else:
            with self._retiring:
                say = writer not in self._retired and self._over()
        if say:
            log.warning("disk trouble over, %s: writes work again (%d failed since start)", self.writer, self.errors)


_TROUBLE = {name: DiskTrouble(name) for name in WRITERS}


def trouble(writer: str) -> DiskTrouble:
    return _TROUBLE[writer]


def all_writers() -> list[DiskTrouble]:
    return [_TROUBLE[n] for n in WRITERS]
