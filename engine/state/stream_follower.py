"""The DNC stream's follower (replication.py holds the theory of operation and the publisher): a node
reading `tf:dnc` applies every entry in stream order -- DNC changes into its lists and journal, 5656
reports into its report index -- and keeps the id of the last one applied (`lists/dnc.stream-id`).

`catch_up` reads what was added while the node was down (once, before it listens, bounded by a
timeout); `follow` then blocks in XREAD for new entries; `_rejoin` finds where to read on when a
failover left this node's id past the new primary's stream's end. `_Follower` is a mixin of
`DncReplicator`, which holds the connections, the ids and the counters these methods use.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import msgpack

from ..aiowait import wait_for
from ..durable import replace_file

log = logging.getLogger("telfilter")

STREAM = "tf:dnc"
RECENT = 1000               # (id, publisher's time) of the last entries applied: the last one a failed-over stream
                            # still has is where this node reads on (_rejoin); ~100 KB
BLOCK_MS = 1000
CHUNK = 10_000              # numbers per stream entry
LATEST = 100_000            # (number, channel) whose newest change time a process remembers (_newer; ~300 B each)
RECALL_ENTRIES = 20_000     # stream entries read back at a start for their change times (_recall_times)
RECALL_PAGE = 100            # (an entry of a CLI import holds up to CHUNK numbers, ~90 KB: ~9 MB a page at most)


class _Follower:
    """Reading the stream (the reader's connection blocks in XREAD) and applying its entries in order."""

    async def catch_up(self, timeout: float = 5.0) -> int:
        """Apply what was added to the stream while this node was down (before it listens)."""
        n = 0
        try:
            async def read_all():
                nonlocal n
                await self._check_trimmed()
                await self._recall_times(time.monotonic() + timeout / 2)
                while True:
                    got = await self.redis.xrange(STREAM, min=_after(self.last_id), count=CHUNK // 10)
                    if not got:
                        return
                    n += self._apply(got)
            await wait_for(read_all(), timeout)
        except Exception as e:
            self._error("catch-up", e)
        if n:
            log.info("DNC replication: caught up %d stream entries (last id %s)", n, self.last_id)
        return n

    async def _recall_times(self, deadline: float) -> None:
        """The change times of the entries this node applied before it stopped (the newest RECALL_ENTRIES, at most
        LATEST numbers, what can be read by `deadline`), learnt again without applying anything: `_newer` remembers
        them in memory only, and a queue another node publishes late (Redis was away from it) would otherwise undo,
        after this node's restart, a later command it had applied (an older HUY DNC reaching the stream after the
        confirmed DK DNC)."""
        if self.last_id == "0":
            return
        below, seen, got_times = self.last_id, 0, []
        while seen < RECALL_ENTRIES and len(got_times) < LATEST and time.monotonic() < deadline:
            got = await self.redis.xrevrange(STREAM, max=below, count=RECALL_PAGE)
            for _eid, fields in got:
                if b"c" in fields:
                    got_times += [(x, ch, t) for _op, ch, x, t in _changes(fields) if t is not None]
            seen += len(got)
            if len(got) < RECALL_PAGE:
                break
            below = "(" + got[-1][0].decode()
        for x, ch, t in reversed(got_times):        # oldest first: the newest stay the most recently remembered
            self._newer(x, ch, t)
        self.stats["recalled_times"] += len(got_times)      # (a counter: a second catch-up adds)

    async def _check_trimmed(self) -> None:
        if self.last_id == "0":
            return
        first = await self.redis.xrange(STREAM, count=1)
        if first and stream_id_key(first[0][0].decode()) > stream_id_key(self.last_id):
            log.error("DNC replication: entries after %s were trimmed from %s (this node was down too long): "
                      "changes made elsewhere in that time may be missing here; re-import the DNC list",
                      self.last_id, STREAM)

    async def follow(self) -> None:
        """Apply every new stream entry as it comes (cancelled on stop)."""
        backoff = 0.1
        while True:
            try:
                got = await self.reader.xread({STREAM: self.last_id}, count=200, block=BLOCK_MS)
                backoff = 0.1
                if not (self.out or self.out_reports):      # (else the publication says it, with what waited)
                    self._works_again("following the other nodes' changes")
                if not got:                 # (idle, or past the stream's end: one XREVRANGE a BLOCK_MS while idle)
                    await self._rejoin()
                for _name, entries in got or ():
                    for e in entries:       # one entry (<= CHUNK numbers, one fsync) per loop turn:
                        self._apply([e])    # a large import elsewhere never stalls judging here
                        await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._error("follow", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _rejoin(self) -> None:
        """A failover lost the old primary's last entries (asynchronous replication) after this node applied them:
        its last id is past the new primary's stream, and the entries added there get ids below it when the new
        primary's clock is behind the old one's (or in the same millisecond), so XREAD after it would skip them for
        good (a DNC registration never reaching this node). Found past the end, the follower reads on after the
        newest entry it applied that the stream still has (the same id and publisher's time: the entries both had),
        or, none among the stream's last RECENT, from those RECENT on (applying is idempotent). The changes of the
        lost entries stay in force here, as on the nodes that read them; the others never see them."""
        if self.last_id == "0":
            return
        newest = await self.reader.xrevrange(STREAM, count=1)     # (trimmed from its start only: its end stays)
        top = newest[0][0].decode() if newest else "0-0"         # (none: the new primary has no stream at all)
        if stream_id_key(top) >= stream_id_key(self.last_id):
            return
        known, at, n, below = set(self._recent), None, 0, "+"
        while at is None and n < RECENT:   # newest first, a page at a time (an entry holds up to CHUNK numbers)
            got = await self.reader.xrevrange(STREAM, max=below, count=20)
            for eid, fields in got:
                if (eid, fields.get(b"t")) in known:
                    at = eid.decode()
                    break
            n += len(got)
            if len(got) < 20:
                break
            below = "(" + got[-1][0].decode()
        if at is None:      # not among the last RECENT: those read again; a shorter stream: all of it
            at = _before(below[1:]) if n >= RECENT else "0"
        self.stats["rejoined"] += 1
        log.warning("DNC replication: this node read %s past the end of %s (%s): a failover (or a server restarted "
                    "empty) lost the entries after %s; reading on from there (changes of the lost entries are in "
                    "force on the nodes that read them only)", self.last_id, STREAM, top, at)
        self.last_id = at
        self._save_id(at)       # (kept in memory only, every start found the file past the end again and said so)

    def _apply(self, entries) -> int:
        """Apply stream entries in order; the writer journals them in the same order. An own change that
        was journalled when it was made ("j") is journalled again as it comes back, so the journal ends
        in the stream's order even when another node's change to the same number was journalled in
        between (replayed after a restart, add-then-remove and remove-then-add must not swap). The id
        of the last entry moves on only once its changes are journalled: an entry whose journal write
        fails is read again, and is put in force only once journalled (in force first, a lists reload before it
        was read again read the files without it and published its removal to every node: publish_diff)."""
        journal, todo = [], []
        now = time.time()
        last = self.last_id
        for eid, fields in entries:
            own = fields.get(b"node", b"").decode() == self.node
            if b"r" in fields:
                self._apply_report(fields[b"r"], own)
            again = not own or fields.get(b"j") == b"1"
            for op, ch, x, t in _changes(fields):
                if t is not None and not self._newer(x, ch, t):
                    self.stats["skipped_older"] += 1      # a later change to it is in force: not undone
                    continue
                todo.append((op, x, ch))
                if again:
                    journal.append((op, x, ch))
            self.stats["applied_own" if own else "applied_remote"] += 1
            try:
                self.stats["delay_ms_last"] = round((now - float(fields[b"t"])) * 1000, 3)
            except (KeyError, ValueError):
                pass
            last = eid.decode() if isinstance(eid, bytes) else eid
            self._recent.append((eid if isinstance(eid, bytes) else eid.encode(), fields.get(b"t")))
        if self.writer and journal:
            self.pipe.store.append_replicated(journal)
        L = self.pipe.lists
        for op, x, ch in todo:
            (L.add_dnc if op == "add" else L.remove_dnc)(x, ch)
        self._save_id(last)
        self.last_id = last
        return len(entries)

    def _save_id(self, last: str) -> None:
        """The id this node reads on after (`lists/dnc.stream-id`), by the process that writes the lists. (A power cut
        that keeps an older id is safe: the entries after it are applied again in stream order.)"""
        if self.writer:     # whole and durable: written without an fsync, a power cut left it empty or NUL bytes
            replace_file(self.id_path, (last + "\n").encode())

    def _newer(self, number: int, channel: str, at: float) -> bool:
        """Whether a change made at `at` is at least as new as every change to (number, channel) this process
        applied (remembered for the newest LATEST); if so it becomes the newest. The stream orders entries by when
        they were published, and a queue published late (Redis away, a restart) would otherwise undo a later
        command of the same subscriber made on another process: the time it was put in force orders them."""
        key = (number, channel)
        prev = self._latest.get(key)
        if prev is not None and prev > at:
            return False
        self._latest[key] = at
        self._latest.move_to_end(key)
        if len(self._latest) > LATEST:
            self._latest.popitem(last=False)
        return True

    def _apply_report(self, raw: bytes, own: bool) -> None:
        """A 5656 spam report taken by some node: into this process's index (idempotent per
        reporter) and, from another node, into this data dir's reports.jsonl (so the index
        rebuilt on start and the regulator's report see it)."""
        from datetime import datetime

        from ..numbers import normalise_number
        try:
            rec = json.loads(raw)
            if not own and self.writer:
                self.pipe.reports.inner.append(rec)
            if rec.get("kind") in ("S", "V") and rec.get("reported"):
                n = normalise_number(str(rec["reported"]))
                ts = datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp()
                if n is not None:
                    self.pipe.state.reports.add(n, str(rec.get("reporter")), ts)
            self.stats["reports_applied"] += 1
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
            log.error("DNC replication: a replicated 5656 report was not applied: %s", e)


def _changes(fields):
    """A stream entry's DNC changes in order, (op, channel, number, time put in force or None), from its batch ("d")
    and change times ("c")."""
    times = _times(fields.get(b"c"))
    for i, (op, ch, nums) in enumerate(msgpack.unpackb(fields[b"d"]) if b"d" in fields else ()):
        ts = times[i] if i < len(times) and times[i] else ()
        for k, x in enumerate(nums):
            yield op, ch, x, (ts[k] if k < len(ts) else None)


def _times(raw) -> list:
    """An entry's change times ("c": a list per run, None where not kept), [] when it has none (a CLI snapshot's
    difference, an entry from an earlier version): its changes are applied in stream order, as before."""
    if not raw:
        return []
    try:
        got = msgpack.unpackb(raw)
        return [ts if isinstance(ts, list) else None for ts in got] if isinstance(got, list) else []
    except (ValueError, msgpack.UnpackException):
        return []


def stream_id_key(i: str) -> tuple:
    """A Redis stream id (`MS-SEQ`, or `MS`) as what orders them: (MS, SEQ)."""
    a, _, b = i.partition("-")
    return int(a), int(b or 0)


def _before(i: str) -> str:
    """The id just below `i` (XREAD reads after an id: from `i` itself)."""
    a, b = stream_id_key(i)
    return f"{a}-{b - 1}" if b else f"{a - 1}-{2 ** 64 - 1}"


def _after(i: str) -> str:
    return "-" if i == "0" else "(" + i
