"""DNC changes and 5656 spam reports shared between nodes through a Redis stream
(`serve --state redis://…`).

Theory of operation
-------------------
Each node keeps loading its lists from its own data dir (roaring snapshots + the DNC journal);
only changes travel. The stream `tf:dnc` is the order of record: every change made on any
node is appended to it (XADD, one entry per loop iteration, carrying a msgpack batch
[[op, channel, [E.164 numbers]], …] and the node's id), and every node applies every entry,
its own included, in stream order. Applying `add`/`remove` is idempotent, so a node that
applies in stream order ends in the state the stream describes, whatever it had done locally
in between (its own change is in force at once, and again when its entry comes back). One
exception: a journalled change (5656, ctl) carries the time it was put in force ("c"), after
every change to that number its node had applied, and a change older than the newest one a
process applied to that number and channel is skipped (_Follower._newer): queues published
late (Redis away) reach the stream in the order they are published, not the order the
subscriber's commands were made in, and an older HUY DNC undid a later, confirmed DK DNC.

Changes enter the stream from:
- the journal (`ListStore.append_delta`: a 5656 `DK DNC` / `HUY DNC`, `telfilter ctl lists`),
  published right after the fsync'ed journal line;
- snapshots installed by the CLI (`telfilter lists import/add/remove` beside a running
  serve): when serve reloads its lists it diffs the old and new DNC bitmaps (roaring set
  differences, milliseconds at millions of numbers) and publishes the difference; those installed while serve was
  down are published by its next start, diffed against the lists its last clean stop left published (published.py).

A remote entry (another node's) is applied to the lists in memory and journalled in this data
dir (one fsync per entry), so a restart without Redis still has it. An own change from the journal
is journalled again when its entry comes back: the journal then ends in stream order even when
another node's change to the same number was journalled between the two (entries carry "j" for
this; a CLI snapshot's difference is in the snapshot and is not journalled). The stream id of the
last applied entry is kept in `lists/dnc.stream-id`, written only after the entry's journal line; a node that was down reads on from there before
it listens (`catch_up`, bounded by a timeout) and then follows the stream (XREAD BLOCK), so a
change reaches every running node within one round trip (milliseconds on a LAN; the
acceptance bound is 1 s). The stream is capped at ~MAXLEN entries (XADD MAXLEN ~); a node
that was down longer than that finds its id trimmed and says so (re-import the list). A failover
that lost the stream's last entries after this node read them leaves its id past the new primary's
stream: found when XREAD finds nothing, it reads on from the newest entry both have (`_rejoin`).
The follower (catch_up, follow, _rejoin, applying entries) is in stream_follower.py; this file publishes.

5656 spam reports (`S <number> …`, `V <number> …`, `FW …`) travel the same way, as one entry
each: every process adds them to its report index (distinct reporters: idempotent) and other
nodes' reports are appended to this data dir's reports.jsonl (worker 0), so SENDER_REPORTED
counts reporters from every node, and an index rebuilt on start has them.

With `serve --workers N`, all workers share one data dir (one node id): each applies every
entry in memory; only worker 0 journals remote entries, keeps the id file and publishes CLI
diffs, so nothing is written twice.

A publication that fails (Redis away) is retried with back-off while the process lives; the
change is already in force here and in this node's journal. What a clean stop could not publish
is saved in the data dir and published by the next start (unpublished.py). A crash before it is
published leaves it on this node only (a window of one loop iteration while Redis is up; the
whole outage while it is away).

What waits to be published is bounded whatever the outage's length or the import's size:
- DNC changes wait as net add/remove sets per channel (roaring bitmaps, `dncchanges.Changes`): a number
  changed many times is held once, with its last operation, which is all an idempotent
  add/remove stream conveys to the other nodes' final state. They take at most about the space of
  the lists they change; a CLI import's difference is held as the bitmap difference itself, not
  as one object per number. Changes journalled here and a CLI snapshot's difference wait in
  separate segments, in order (at most two segments per list reload during an outage).
- 5656 reports wait in a queue of at most MAX_PENDING_REPORTS; beyond it the oldest leaves the
  queue (counted in `reports_dropped`, logged). It is still in this node's reports.jsonl: only
  the other nodes' SENDER_REPORTED counts miss it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict, deque
from pathlib import Path

from ..aiowait import wait_for
from ..durable import remove_dead_writers_tmp
from .dncchanges import Changes
from .published import _Published
from .unpublished import _Unpublished
from .sentinel import open_client
from .stream_follower import BLOCK_MS, CHUNK, RECENT, STREAM, _Follower
from .url import parse_url

log = logging.getLogger("telfilter")

MAXLEN = 1_000_000          # entries kept in the stream (~, Redis trims in whole nodes)
MAX_PENDING_REPORTS = 100_000   # 5656 reports waiting to be published (a few hundred bytes each)
_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")     # a stream entry's id (ms-seq)


def node_id(data_dir: Path) -> str:
    p = Path(data_dir) / "lists" / "node-id"
    try:
        return p.read_text().strip()
    except FileNotFoundError:
        p.parent.mkdir(parents=True, exist_ok=True)
        nid = secrets.token_hex(6)
        tmp = p.with_name(f"node-id.{os.getpid()}")
        tmp.write_text(nid + "\n")
        try:
            os.link(tmp, p)                 # first writer wins (workers start at once)
        except FileExistsError:
            pass
        tmp.unlink()
        return p.read_text().strip()


class DncReplicator(_Unpublished, _Published, _Follower):
    def __init__(self, url: str, pipe, writer: bool = True, client=None, reader=None):
        cfg = parse_url(url)
        # (through Sentinel each follows a failover: sentinel.py; a publication that meets the demoted primary fails
        # and is retried with back-off, on the new one once the sentinels name it)
        self.redis = client or open_client(cfg, socket_connect_timeout=cfg["timeout"], socket_timeout=cfg["timeout"])
        # the follower's connection blocks in XREAD: its timeout covers the block
        self.reader = reader or open_client(cfg, socket_connect_timeout=cfg["timeout"],
                                            socket_timeout=BLOCK_MS / 1000 + cfg["timeout"] + 1)
        self.url = cfg["url"]
        self.pipe = pipe
        self.writer = writer
        self.node = node_id(pipe.store.dir)
        self.id_path = Path(pipe.store.dir) / "lists" / "dnc.stream-id"
        if writer:
            remove_dead_writers_tmp(self.id_path)       # a writer killed -9 while it wrote the id
        self.last_id = self._read_id()
        self.out: list[Changes] = []   # DNC changes waiting to be published, oldest segment first
        self.out_reports: deque = deque()   # 5656 spam reports (JSON records) waiting to be published
        self._scheduled = False
        self._claimed: list = []        # files of unpublished changes claimed at start (unpublished.py)
        self._while_down = None         # CLI DNC changes made while serve was down, until published (published.py)
        self._pub_task = None
        self._backoff = 0.1
        self._last_log = 0.0
        self._failures = 0              # failed calls since the server last answered (_works_again says the end)
        self._last_drop_log = -5.0
        self._recent: deque = deque(maxlen=RECENT)    # (id, fields[b"t"]) applied last, oldest first (_rejoin)
        self._latest = OrderedDict()    # (number, channel) -> time of the newest change applied (_newer)
        self.stats = {"published": 0, "applied_remote": 0, "applied_own": 0, "errors": 0, "delay_ms_last": None,
                      "reports_published": 0, "reports_applied": 0, "reports_dropped": 0, "rejoined": 0,
                      "skipped_older": 0, "recalled_times": 0}
        pipe.store.publish = self.publish
        if pipe.reports is not None and not isinstance(pipe.reports, PublishingReports):
            pipe.reports = PublishingReports(pipe.reports, self)

    # ------------------------------------------------------------ publishing
    def _read_id(self) -> str:
        """The id in `lists/dnc.stream-id`; "0" (the stream from its start) when there is none or it is damaged.
        Read again from the start, the entries this node applied are applied again in stream order (idempotent; a
        change older than one in force is skipped: _newer); from any later guess, changes would be skipped for
        good. Damaged (a power cut under an earlier version, which wrote it without an fsync: empty or NUL
        bytes), every stream read failed on it (or the start, on bytes that are not text)."""
        try:
            raw = self.id_path.read_bytes()
        except FileNotFoundError:
            return "0"
        except OSError as e:
            return self._damaged_id(f"unreadable: {e.strerror or e}")
        text = raw.decode("ascii", "replace").strip()
        if text == "0" or _ID_RE.fullmatch(text):
            return text
        return self._damaged_id(f"{len(raw)} bytes, no stream id: {raw[:32]!r}")

    def _damaged_id(self, why: str) -> str:
        log.error("DNC replication: %s is damaged (%s): reading %s again from its start (the entries this node "
                  "applied are applied again in stream order; none is skipped)", self.id_path, why, STREAM)
        return "0"

    def _segment(self, j: bool) -> Changes:
        if not self.out or self.out[-1].j != j:
            self.out.append(Changes(j))
        return self.out[-1]

    def pending(self) -> int:
        """DNC numbers waiting to be published (each once, with its last change)."""
        return sum(len(c) for c in self.out)

    def publish(self, op: str, number: int, channel: str) -> None:
        """A journalled change just put in force here (a 5656 command, `ctl lists`): queued with its time, which is
        after every change to it this process applied (a node whose clock is behind another's: its entry would be
        skipped everywhere as older while it is in force here)."""
        at = max([time.time()] + [self._latest[k] + 1e-6 for k in ((number, c) for c in channel) if k in self._latest])
        for c in channel:
            self._newer(number, c, at)
        self._segment(True).put(op, channel, number, at)
        self._soon()

    def publish_report(self, rec: dict) -> None:
        self.out_reports.append(json.dumps(rec, ensure_ascii=False))
        self._bound_reports()
        self._soon()

    def _bound_reports(self) -> None:
        over = len(self.out_reports) - MAX_PENDING_REPORTS
        if over > 0:
            for _ in range(over):
                self.out_reports.popleft()
            self.stats["reports_dropped"] += over
            now = time.monotonic()
            if now - self._last_drop_log >= 5.0:
                self._last_drop_log = now
                log.error("DNC replication: more than %d 5656 reports waiting for %s; %d so far left the queue, "
                          "oldest first (they are in this node's reports.jsonl; other nodes will not count them)",
                          MAX_PENDING_REPORTS, self.url, self.stats["reports_dropped"])

    def _soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self._kick)
            except RuntimeError:
                self._scheduled = False

    def publish_diff(self, old, new) -> int:
        """Publish what a CLI snapshot changed in the DNC lists (old, new: Lists)."""
        if not self.writer:
            return 0
        n = 0
        for ch, a, b in (("S", old.dnc_s, new.dnc_s), ("V", old.dnc_v, new.dnc_v)):
            added, removed = b - a, a - b
            if added or removed:
                self._segment(False).merge(ch, added, removed)
                n += len(added) + len(removed)
        if n:
            self._soon()
        return n

    def _kick(self) -> None:
        self._scheduled = False
        if self._pub_task is None or self._pub_task.done():
            self._pub_task = asyncio.ensure_future(self._publish_all())

    async def _publish_all(self) -> None:
        done = (self.stats["published"], self.stats["reports_published"])
        while self.out or self.out_reports:
            batch, self.out = self.out, []
            reports, self.out_reports = self.out_reports, deque()
            try:
                while batch:                    # each segment or report leaves the batch once it is out
                    seg = batch[0]
                    for e, at in seg.entries(CHUNK):
                        await self._xadd({"d": e, **({"j": "1"} if seg.j else {}), **({"c": at} if at else {})})
                    batch.pop(0)
                    self.stats["published"] += len(seg)
                while reports:
                    await self._xadd({"r": reports[0]})
                    reports.popleft()
                    self.stats["reports_published"] += 1
                self._backoff = 0.1
                if not self.out and not self.out_reports:
                    self.published_all()
                    self._works_again(f"{self.stats['published'] - done[0]} numbers and "
                                      f"{self.stats['reports_published'] - done[1]} reports that waited are published")
            except BaseException as e:
                # what is not out yet is kept, in order, for the retry (a segment partly out goes again whole:
                # applying DNC changes is idempotent; a report is never sent twice); a cancel too (close: what
                # is left is saved for the next start)
                if self.out and batch and self.out[0].j == batch[-1].j:
                    batch[-1].fold(self.out.pop(0))
                self.out[:0] = batch
                reports.extend(self.out_reports)
                self.out_reports = reports
                self._bound_reports()
                if not isinstance(e, Exception):
                    raise
                self._error("publish", e)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 5.0)

    async def _xadd(self, fields: dict) -> None:
        await self.redis.xadd(STREAM, {"node": self.node, "t": f"{time.time():.6f}", **fields},
                              maxlen=MAXLEN, approximate=True)

    def _error(self, what, e) -> None:
        self.stats["errors"] += 1
        self._failures += 1
        now = time.monotonic()
        if now - self._last_log >= 5.0:
            self._last_log = now
            log.error("DNC replication (%s) via %s failed: %s: %s (%d numbers and %d reports waiting to be "
                      "published; retrying)", what, self.url, type(e).__name__, e, self.pending(),
                      len(self.out_reports))

    def _works_again(self, what: str) -> None:
        """The server answered after failures: said once (before, the last word in the log was the failure)."""
        if self._failures:
            log.warning("DNC replication via %s works again (%d failed calls before): %s", self.url, self._failures,
                        what)
            self._failures = 0

    async def close(self) -> bool:
        """Publish what waits (2 s at most); what is still unpublished then (Redis away) is saved in the data dir
        and published by the next start (`load_unpublished`): a confirmed change is never lost to the others.
        Then the DNC lists in force are what the other nodes have or will have: the writer leaves them for the next
        start (`save_published`). False when a change was lost, that save failing too (serve's exit status then says
        the stop was not clean; no lists are left: the next start publishes nothing)."""
        lost = False
        self.publish_while_down()               # (a start stopped before it did)
        t = self._pub_task
        if t is not None and not t.done():
            t.cancel()                          # its batch goes back to `out` (_publish_all)
            await asyncio.wait({t})
        if self.out or self.out_reports:
            try:
                await wait_for(self._publish_all(), 2.0)
            except (Exception, asyncio.CancelledError):
                pass
        if self.out or self.out_reports:
            try:
                self.save_unpublished()
                self.out, self.out_reports = [], deque()      # saved: the next start publishes them
            except OSError as e:
                lost = True
                log.error("DNC replication: %d numbers and %d reports not published and not saved (%s): the other "
                          "nodes will not have them", self.pending(), len(self.out_reports), e)
        if not lost:        # what the other nodes have, or will have from the saved file: the next start's reference
            await self.save_published()
        for c in (self.redis, self.reader):
            try:
                await c.aclose()
            except Exception:
                pass
        return not lost


class PublishingReports:
    """The report store, with every appended report also published to the other nodes."""

    def __init__(self, inner, rep: DncReplicator):
        self.inner, self.rep = inner, rep

    def append(self, rec: dict) -> None:
        self.inner.append(rec)
        self.rep.publish_report(rec)

    def announce(self, recs) -> None:
        for rec in recs:
            self.rep.publish_report(rec)

    def __getattr__(self, name):
        return getattr(self.inner, name)
