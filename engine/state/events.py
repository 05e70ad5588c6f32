"""Recipient history and call durations shared between processes (`--state redis://…`).

Theory of operation
-------------------
These two criteria (`new_recipient_share`, `short_call_share`) read aggregates of many
messages, never a cap that two processes could race for, so they do not need the counters'
check-and-commit: every process keeps the full tables in memory (the flat, bounded
RecipientHistory and CallDurations) and every process's updates are broadcast to the others.

- A write (`history.add` after a message let through, `calls.add` on a call end) is applied
  here and appended to `self.out`; once per event-loop iteration the batch goes to the stream
  `tf:ev` as one entry (msgpack records, the process id), in the same script call as the
  counter batch (redis_store.py: one round trip for both), trimmed by MINID (on the server's clock: redis_script.TRIM_STREAM) to the last
  `KEEP` seconds (the longest window these criteria use), so its size follows the traffic of
  one window, never the traffic seen.
- A follower task reads the stream (XREAD BLOCK) and applies the records of other processes
  to the same tables, in the order the server received them. Within a process the tables
  see its own updates at once and the others' within a round trip (milliseconds).
- A process that starts reads the last `KEEP` seconds of the stream first, so a restarted
  node has the same history as the others (its own earlier updates included).

Records carry stable ints (engine/state/journalled.stable): `["h", sender, recipient, second,
window]`, `["k", caller, end second, duration]`. Redis memory: the last hour of updates, about
30 bytes a record (1M let-through messages an hour: ~30 MB). Unreachable Redis: updates stay
local (logged, counted in `errors`), the follower retries with back-off.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

import msgpack

from ..aiowait import wait_for
from ..rules.history import CallDurations, RecipientHistory
from .journalled import JournalledCalls, JournalledHistory
from .redis_script import TRIM_STREAM

log = logging.getLogger("telfilter")

STREAM = "tf:ev"
KEEP = 3600.0               # seconds of updates kept in the stream (and read on start)
KEEP_MS = str(int(KEEP * 1000))


def _wire(rec: tuple) -> list:
    """A history or call-duration write as a stream record (whole seconds where exact: compact)."""
    if rec[0] == "h":
        _, s, r, now, window = rec
        return ["h", s, r, int(now), int(window) if window == int(window) else window]
    _, c, ts, duration = rec
    return ["k", c, float(ts), float(duration)]


async def read_back(follower, stream: str, keep: float, timeout: float) -> int:
    """Apply the last `keep` seconds of `stream` to `follower` (its `redis`, `_apply(entries, skip_own)`,
    which moves its `last_id`, and `_error`), every process's entries included, within `timeout`;
    returns how many entries it read. A failure is the follower's error, not the caller's. The seconds are
    the stream's, before its newest entry (the server's clock): from this process's clock, one ahead of the
    server's by more than `keep` read nothing (and followed from its own time on: nothing until the server's
    clock caught up), one behind read more (found by the clock-step probe)."""
    n = 0
    try:
        async def read():
            nonlocal n
            newest = await follower.redis.xrevrange(stream, count=1)
            if not newest:
                return
            eid = newest[0][0]
            ms = int((eid.decode() if isinstance(eid, bytes) else eid).partition("-")[0])
            start = f"{max(0, ms - int(keep * 1000))}-0"
            while True:
                got = await follower.redis.xrange(stream, min=start, count=1000)
                if not got:
                    return
                follower._apply(got, skip_own=False)
                n += len(got)
                start = "(" + follower.last_id
        await wait_for(read(), timeout)
    except Exception as e:
        follower._error("catch-up", e)
    return n


# the updates of one loop iteration as one entry, the stream then trimmed on the server's clock (as the batch
# script does: redis_script.TRIM_STREAM). KEYS[1]: the stream; ARGV: process id, blob, milliseconds kept.
XADD_TRIMMED = TRIM_STREAM + """
trim_stream(KEYS[1], redis.call('XADD', KEYS[1], '*', 'p', ARGV[1], 'd', ARGV[2]), ARGV[3])
"""


class SharedEvents:
    stream = STREAM

    def __init__(self, client, reader, url: str):
        self.redis, self.reader, self.url = client, reader, url
        self.me = f"{os.getpid()}:{secrets.token_hex(4)}"
        # the embedded store's wrappers, each write broadcast instead of journalled
        self.history = JournalledHistory(RecipientHistory(), lambda rec: self.emit(_wire(rec)))
        self.calls = JournalledCalls(CallDurations(), lambda rec: self.emit(_wire(rec)))
        self.out: list = []
        self._scheduled = False
        self._task = None
        self.last_id = "$"
        self.stats = {"sent": 0, "applied": 0, "errors": 0, "lost": 0}
        self._last_log = 0.0
        self.carrier = None     # RedisStore._wake: the updates ride with its batch script call
        # other streams read by the same XREAD (one wake-up for the entries of one batch script call):
        # name -> an object with `last_id` and `_apply(entries)` (receipts.py's message ids)
        self.followed: dict = {}
        self._xadd = None       # XADD_TRIMMED, registered at its first use (the updates not riding a batch)

    def take(self) -> tuple:
        """(blob, milliseconds kept, process id) of the updates waiting, for the batch script to XADD
        (an empty blob: none; the stream trimmed on the server's clock: redis_script.TRIM_STREAM)."""
        batch, self.out = self.out, []
        self.stats["sent"] += len(batch)
        return (msgpack.packb(batch) if batch else b"", KEEP_MS, self.me)

    def lost(self, taken: tuple | None = None) -> None:
        """The server could not take the updates: they stay in this process only."""
        n = len(self.out) if taken is None else len(msgpack.unpackb(taken[0])) if taken[0] else 0
        if taken is None:
            self.out.clear()
        else:
            self.stats["sent"] -= n
        self.stats["lost"] += n

    def emit(self, rec) -> None:
        self.out.append(rec)
        if self.carrier is not None:
            return self.carrier()
        if not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self._kick)
                self._scheduled = True
            except RuntimeError:        # no loop: nothing to share with
                self.out.clear()

    def _kick(self) -> None:
        self._scheduled = False
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self.out:
            batch, self.out = self.out, []
            try:
                if self._xadd is None:
                    self._xadd = self.redis.register_script(XADD_TRIMMED)
                await self._xadd(keys=[STREAM], args=[self.me, msgpack.packb(batch), KEEP_MS])
                self.stats["sent"] += len(batch)
            except Exception as e:      # kept locally only: the criteria still see this process's traffic
                self._error("broadcast", e)
                return

    def _error(self, what, e) -> None:
        self.stats["errors"] += 1
        now = time.monotonic()
        if now - self._last_log >= 5.0:
            self._last_log = now
            log.error("shared history/call durations (%s) via %s failed: %s: %s", what, self.url, type(e).__name__, e)

    def _apply(self, entries, skip_own: bool = True) -> None:
        h, k = self.history.mem, self.calls.mem
        for eid, f in entries:
            self.last_id = eid.decode() if isinstance(eid, bytes) else eid
            if skip_own and f.get(b"p", b"").decode() == self.me:
                continue
            for r in msgpack.unpackb(f[b"d"]):
                try:
                    if r[0] == "h":
                        h.add(r[1], r[2], r[3], r[4])
                    elif r[0] == "k":
                        k.add(r[1], r[2], r[3])
                    self.stats["applied"] += 1
                except (IndexError, TypeError, ValueError) as e:
                    self._error("apply", e)

    async def catch_up(self, timeout: float = 5.0) -> int:
        """The last KEEP seconds of every process's updates (a restarted node included)."""
        n = await read_back(self, STREAM, KEEP, timeout)
        if self.last_id == "$":
            self.last_id = "0-0" if n == 0 else self.last_id
        return n

    async def follow(self) -> None:
        backoff = 0.1
        if self.last_id == "$":          # (no catch_up: the stream's whole KEEP, not from this process's clock)
            self.last_id = "0-0"
        while True:
            try:
                streams = {STREAM: self.last_id, **{name: f.last_id for name, f in self.followed.items()}}
                got = await self.reader.xread(streams, count=500, block=1000)
                backoff = 0.1
                for name, entries in got or ():
                    name = name.decode() if isinstance(name, bytes) else name
                    (self if name == STREAM else self.followed[name])._apply(entries)
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._error("follow", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        if self.out:
            try:
                await wait_for(self._send(), 2.0)
            except Exception:
                pass
