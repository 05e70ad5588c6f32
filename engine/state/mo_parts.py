"""Concatenated 5656 messages whose parts reach different processes (`serve --workers N`, or several
nodes on one Redis): put together in Redis, so a report longer than one SMS is one report with its
whole content wherever its parts land (mo.py's reassembly is per process: an SMSC that sends the
parts on different binds -- one per worker -- made each process judge its fragment, a cut report
plus a "syntax error" made of the rest).

Theory of operation. Only messages for the short code go this way: their parts are acknowledged as
they come anyway (mo.py), so no process has to answer for another's part. A part's text goes into the
message's hash (`tf:{mo:<digest>}`, keyed like mo.py by SMSC (mo_origin), source, destination,
reference and total; part number -> text) by the script ADD, which answers in the same call whether
that part completed the message. The process whose part completes it takes every part's text (a `done`
mark left for KEEP seconds: 'w' while its command is written, '1' once it is recorded, DONE) and judges the whole message once, then
answers its part with the message's outcome; the others answer their parts 0 at once (acknowledged
as they come, as in one process). Each process that stored a part of a message arms a timer of
`concat_timeout`; when it fires, TAKE gives the parts still there (if any) to exactly one process,
which judges what arrived. A part that comes while `done` is there belongs to a message already
judged: acknowledged, logged, not applied again (a report is counted once); while the mark is 'w' it is
answered ESME_RX_T_APPN instead, in whichever process it lands (asked for again: by then the command is
recorded, or put back to be judged whole with it). A command the journal
cannot record is put back (PUTBACK: its parts again, `done` removed, a `wait` mark set, for
NOT_RECORDED_KEEP seconds, the SMSC's retry schedule) before its completing part is answered
ESME_RX_T_APPN; while `wait` is there no timer takes it, and the next part that comes (the redelivered
one, wherever it lands) takes them all and has the message judged again, whole. So is a message judged with
what arrived whose parts made no command (a syntax error, nothing in force): its late part has the whole text judged.

A taker (of any of these takes) leaves the parts in the server until DONE or PUTBACK, under a lease (LEASE, on the
server's clock, in the sorted set TAKEN) that it renews while it writes (RENEW), and its take has a token of its own:
DONE, PUTBACK and RENEW act only for the holder (mo_parts_scripts.py). A taker killed -9 is taken over once its lease
has ended, by a copy of a part (ADD) or by any process's sweep (`_sweep`, every SWEEP_EVERY: TAKEOVER, one process
wins), the only way for a message taken at `concat_timeout` (every part acknowledged: none comes again); a taker cut
off from the server for longer finds its message taken over and leaves it to the other (logged,
`mo_shared_taken_over`).

A stop does not judge the messages this process holds a timer for with what arrived (a deploy between the
two parts of a `DK DNC` recorded a syntax error, and the second part, after the start, was a late part of a
judged message: the registration was lost, every part acknowledged). Their parts stay in the server for
NOT_RECORDED_KEEP (the SMSC's retry schedule: the process that gets the rest judges them whole, as before), and
each is named in the sorted set DUE with when to judge what arrived; the next start of any process claims DUE
and arms those timers (`restore`), as the embedded journal's restore does (mo_restore.py).

The scripts, the keys and how a part's text is stored are in mo_parts_scripts.py.

Bounds: timers in this process at most `max_pending_concat` (the oldest fires early); hashes expire
after KEEP seconds whatever happens; script calls in flight at most MAX_CALLS, the others wait for a slot
(the store's timeout counts from when a call has one: the wait is this process's queue) (a burst of parts took a connection of the shared client each, and redis-py's asyncio
pool, 100 connections by default, refused the rest at once: those parts fell back to this process's own
reassembly, their other halves in another process never joined them, and the command, every part
acknowledged, was judged on half its text). If the server is away, the part goes through mo.py's own
reassembly in this process (today's behaviour in a pool).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from functools import partial

from ..aiowait import wait_for
from ..smpp_proxy.codec import constants as C
from ..smpp_proxy.concat import concat_id, joined, reading_of
from ..smpp_proxy.mo_restore import _GoneLink, made_no_command, mo_origin
from .mo_parts_scripts import (ADD, CLAIM, DEFER, DONE, DUE, ENDED, PUTBACK, RENEW, TAKE, TAKEOVER, done_mark,
                               TAKEN, keys_named, keys_of, member_of, new_token, read_member, stored_text, texts_of)

log = logging.getLogger("telfilter.smpp")

KEEP = 120.0            # seconds a message's parts, and the mark of a judged one, live in the server

LEASE = 60.0            # seconds a taker has to record a message's command: a part that comes after takes it over
                        # (its taker died: killed -9 between the take and DONE or PUTBACK); a taker alive renews it
                        # every LEASE / 3 while it writes (`_renew`: a disk that stalls longer)

SWEEP_EVERY = LEASE / 6     # seconds between two sweeps of a process (`_sweep`): a message whose taker died is
                            # taken over within LEASE + SWEEP_EVERY of its last renewal

SWEEP_MAX = 32          # messages whose taker's lease ended a sweep takes over at most

NOT_RECORDED_KEEP = 3600.0   # seconds a message not recorded waits for a part again (mo.py's too)

MAX_CALLS = 32          # script calls in flight per process (the shared client's pool holds 100 connections: room
                        # left for the counters' batch, receipts, pool limits)


class SharedMoParts:
    """Wired by serve next to SharedReceipts: `proxy.shared_mo`, used by mo.py for short-code parts."""

    def __init__(self, store, proxy):
        self.redis, self.proxy, self.timeout = store.redis, proxy, store.timeout
        self._add = self.redis.register_script(ADD)
        self._take = self.redis.register_script(TAKE)
        self._putback = self.redis.register_script(PUTBACK)
        self._done = self.redis.register_script(DONE)
        self._defer = self.redis.register_script(DEFER)
        self._claim = self.redis.register_script(CLAIM)
        self._renew_script = self.redis.register_script(RENEW)
        self._ended = self.redis.register_script(ENDED)
        self._takeover = self.redis.register_script(TAKEOVER)
        self._renewal: asyncio.TimerHandle | None = None     # `_renew_due`, armed while `writing` holds a key
        self.timers: OrderedDict = OrderedDict()    # key -> (timer, link, first pdu, reading), oldest first (O(1))
        self.writing: dict = {}             # key -> its take's token: messages whose command is being written (or
                                            # put back) here
        self._sweeping = asyncio.get_running_loop().call_later(SWEEP_EVERY, self._sweep_due)
        self._swept = False                 # a sweep is under way
        self.tasks: set = set()
        self._slots = asyncio.Semaphore(MAX_CALLS)
        self.stats = proxy.stats
        proxy.shared_mo = self

    def part(self, link, pdu, ci, text, reading) -> None:
        """A part of a concatenated MO for the short code (mo.py); answered here, once."""
        self._spawn(self._part(link, pdu, ci, text, reading))

    def _spawn(self, coro) -> None:
        """Run `coro` as a task `close` waits for."""
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _part(self, link, pdu, ci, text, reading) -> None:
        ref, total, n = ci
        key = (mo_origin(link), pdu.source_addr, pdu.destination_addr, ref, total)
        ks, tok = keys_of(key), new_token()
        try:
            got = await self._call(self._add, keys=ks, args=[n, stored_text(text), total, int(KEEP * 1000),
                                                             int(LEASE * 1000), tok + member_of(key, pdu, reading)])
        except Exception as e:              # the server away: this process's own reassembly, as without it
            self.stats["mo_shared_errors"] += 1
            log.warning("shared MO reassembly unavailable (%s: %s): part %d/%d judged in this process",
                        type(e).__name__, e, n, total)
            return self.proxy._mo_part_local(link, pdu, ci, text, False, reading)
        self.stats["mo_shared_parts"] += 1
        if got[0] == 2 and (key in self.writing or done_mark(got) == b"w"):
            # its message's command is being written (here, or by another process): asked for again (by then
            # recorded, or put back to be judged whole with this part), never acknowledged for a command that may
            # not be recorded
            self.stats["mo_concat_while_writing"] += 1
            return self.proxy._mo_answer(link, pdu, C.ESME_RX_T_APPN)
        if got[0] == 2:                     # its message was judged already: not applied again
            log.info("late part %d/%d of a short-code message from %r: acknowledged, not applied again",
                     n, total, pdu.source_addr)
            self.stats["mo_concat_late_shortcode"] += 1
            return self.proxy._mo_answer(link, pdu, 0)
        if got[0] == 1 and key in self.writing:      # (this process took it over from itself: still writing)
            self.writing[key] = tok                 # (its write's DONE or PUTBACK holds the take's token now)
            self.stats["mo_concat_while_writing"] += 1
            return self.proxy._mo_answer(link, pdu, C.ESME_RX_T_APPN)
        if got[0] == 1:
            self._disarm(key)
            # (a message judged before and not recorded: this part's line is its late part's, as mo.py's)
            return self._judge(key, ks, tok, texts_of(got[1]), link, pdu, reading, completing=n,
                               again=len(got) > 2 and int(got[2]) == 1)
        self.proxy._mo_answer(link, pdu, 0)          # acknowledged as it comes (module text)
        if key not in self.timers:
            if len(self.timers) >= self.proxy.settings.max_pending_concat:
                old = next(iter(self.timers))
                self.timers[old][0].cancel()
                self._due(old)
            tm = self.proxy.loop.call_later(self.proxy.settings.concat_timeout, self._due, key)
            self.timers[key] = (tm, link, pdu, reading)

    async def _call(self, script, **kw):
        """One script call, once a slot is free (MAX_CALLS), within 4 × the store's timeout from then: the wait
        for a slot is this process's own queue, not the server being slow (a burst of parts on a loaded host waited
        longer than the timeout for a slot, and those parts fell back to this process's own reassembly while their
        other halves were in Redis: commands acknowledged and judged on half their text). The queue is bounded by
        the SMSCs' windows (a part is answered once its call is done)."""
        async with self._slots:
            return await wait_for(script(**kw), self.timeout * 4)

    def _disarm(self, key) -> None:
        e = self.timers.pop(key, None)
        if e is not None:
            e[0].cancel()

    def _due(self, key) -> None:
        e = self.timers.pop(key, None)
        if e is None:
            return
        self._spawn(self._expired(key, *e[1:]))

    async def _expired(self, key, link, pdu, reading) -> None:
        ks, tok = keys_of(key), new_token()
        try:
            got = await self._call(self._take, keys=ks, args=[int(KEEP * 1000), int(LEASE * 1000),
                                                              tok + member_of(key, pdu, reading)])
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.error("shared MO reassembly: parts of a message from %r not taken (%s: %s); they expire in %.0f s",
                      pdu.source_addr, type(e).__name__, e, KEEP)
            return
        if got[0] == 1:
            self._judge(key, ks, tok, texts_of(got[1]), link, pdu, reading, completing=None)

    def _judge(self, key, ks, tok, texts: dict, link, pdu, reading, completing: int | None,
               again: bool = False) -> None:
        """Judge the message once on the parts' texts; `pdu` (this process's part) names sender and
        destination and, when `completing` (its part number), is the part still to be answered with the
        outcome; `tok`: its take's token. `again`: it was judged before and not recorded (its line a refusal): this
        line says `late`. Its lines name it (`concat`: the report ties them, one message)."""
        p = self.proxy
        total = key[4]
        if len(texts) < total:
            log.info("concatenated MO %s from %r: %d of %d parts after %.0fs (shared); judging what arrived",
                     key[3], key[1], len(texts), total, p.settings.concat_timeout)
            p.stats["mo_concat_incomplete"] += 1
        text = joined([texts[i] for i in sorted(texts)], False, texts)
        self.writing[key] = tok
        if self._renewal is None:
            self._renewal = p.loop.call_later(LEASE / 3, self._renew_due)
        p._judge_mo(pdu, text, f"{type(pdu).__name__} MO x{len(texts)}/{total}", False, reading_of(text, reading),
                    partial(self._judged, key, ks, texts, link, pdu, completing, again), late=again,
                    concat=concat_id(key))

    def _judged(self, key, ks, texts: dict, link, pdu, completing: int | None, again: bool, v) -> None:
        p = self.proxy
        if v is None:
            # not recorded: the parts wait again (the completing one is asked for again once they do)
            back = [x for i in sorted(texts) if i != completing for x in (i, stored_text(texts[i]))]
            self._spawn(self._put_back(key, ks, back, link, pdu if completing is not None else None))
            return
        parts = ((pdu, lambda st, link=link, pdu=pdu: p._mo_answer(link, pdu, st)),) if completing is not None else ()
        if len(texts) < key[4] and made_no_command(v):
            # what arrived made no command (nothing in force): its parts wait, as a message not recorded does, for a
            # late part, which has the whole text judged (a report whose first part came last; mo.py alike); the
            # subscriber is told the syntax error once
            back = [x for i in sorted(texts) for x in (i, stored_text(texts[i]))]
            self._spawn(self._put_back(key, ks, back, link, None))
            return p._mo_outcome(v, link, parts, False, not again, dest_pdu=pdu, shortcode=True)
        self._spawn(self._recorded(ks, key, self.writing.pop(key, None)))
        p._mo_outcome(v, link, parts, False, dest_pdu=pdu, shortcode=True)

    def _renew_due(self) -> None:
        """Every LEASE / 3 while this process writes commands of messages it took (`writing`): their leases renewed
        (RENEW), so that no part sent again takes over a message from a taker alive (a stalled disk holds a write
        for as long as it stalls: the completing part, unanswered meanwhile, is delivered again elsewhere)."""
        self._renewal = None
        if self.writing:
            for key in self.writing:
                self._spawn(self._renew(key))
            self._renewal = self.proxy.loop.call_later(LEASE / 3, self._renew_due)

    async def _renew(self, key) -> None:
        try:
            tok = self.writing.get(key)
            if tok is not None and not await self._call(self._renew_script, keys=keys_of(key),
                                                        args=[int(KEEP * 1000), int(LEASE * 1000), tok]):
                self._not_ours(key, "its lease not renewed")
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.warning("shared MO reassembly: the lease of a message from %r being written not renewed (%s: %s); "
                        "a part sent again once it ends has it judged again", key[1], type(e).__name__, e)

    def _not_ours(self, key, what: str) -> None:
        """A call of this taker's that found its message taken over by another process (its lease ended: this one
        cut off from the server, or stalled, for longer): `what` is not done, the other's take stands."""
        self.stats["mo_shared_taken_over"] += 1
        log.warning("shared MO reassembly: a message from %r this process took was taken over by another once its "
                    "lease ended: %s (judged there too)", key[1], what)

    def _sweep_due(self) -> None:
        """(one sweep at a time; none before the proxy has started: its judging needs the proxy's loop)"""
        if self.proxy.loop is not None and not self._swept:
            self._swept = True
            self._spawn(self._sweep())
        self._sweeping = asyncio.get_running_loop().call_later(SWEEP_EVERY, self._sweep_due)

    async def _sweep(self) -> None:
        """Every SWEEP_EVERY: the messages whose taker's lease has ended (killed -9 between its take and DONE or
        PUTBACK), at most SWEEP_MAX, taken over (TAKEOVER: one process wins each) and judged whole, again, as a
        copy of a part that comes then has them (one taken at concat_timeout has every part acknowledged: no copy
        comes, and it was lost with its taker). A message this process writes is left to it."""
        try:
            ended = await self._call(self._ended, keys=[TAKEN], args=[SWEEP_MAX])
            ours = {keys_of(k)[0] for k in self.writing}
            for m in ended:
                m = m.decode() if isinstance(m, bytes) else m
                if m in ours:
                    continue
                tok = new_token()
                ks = keys_named(m)
                got = await self._call(self._takeover, keys=ks, args=[int(KEEP * 1000), int(LEASE * 1000), tok])
                if got[0] != 1:
                    continue
                key, pdu, reading = read_member(got[2])
                self._disarm(key)
                self.stats["mo_shared_swept"] += 1
                log.warning("shared MO reassembly: a 5656 message from %r whose taker's lease ended (its process "
                            "gone) taken over: judged again, whole", pdu.source_addr)
                self._judge(key, ks, tok, texts_of(got[1]), _GoneLink(key[0]), pdu, reading, completing=None,
                            again=True)
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.warning("shared MO reassembly: the messages of takers gone not swept (%s: %s); the next sweep "
                        "tries again", type(e).__name__, e)
        finally:
            self._swept = False

    async def _recorded(self, ks, key, tok) -> None:
        """The done mark says recorded: a part of it sent again to any process is acknowledged from now on."""
        try:
            if not await self._call(self._done, keys=ks, args=[int(KEEP * 1000), tok or b""]):
                self._not_ours(key, "recorded here, not marked so")
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.warning("shared MO reassembly: a recorded message from %r not marked so (%s: %s); its parts sent "
                        "again are asked for again until the mark expires (%.0f s)", key[1], type(e).__name__, e, KEEP)

    async def _put_back(self, key, ks, back, link, pdu) -> None:
        """A message not recorded: its parts back in the server (waiting for a part to come again), then its
        completing part (`pdu`, if any) answered ESME_RX_T_APPN, so its redelivery finds them there."""
        try:
            if not await self._call(self._putback, keys=ks, args=[int(NOT_RECORDED_KEEP * 1000),
                                                                  self.writing.get(key) or b"", *back]):
                self._not_ours(key, "not recorded here, not put back")
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.error("shared MO reassembly: a message not recorded could not be put back (%s: %s); its "
                      "redelivered part will be judged without the others", type(e).__name__, e)
        finally:
            self.writing.pop(key, None)
        if pdu is not None:
            self.proxy._mo_answer(link, pdu, C.ESME_RX_T_APPN)

    async def restore(self) -> int:
        """At a start: arm the timers a stop left in DUE (module text). Returns how many."""
        try:
            got = await self._call(self._claim, keys=[DUE], args=[])
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.error("shared MO reassembly: the 5656 messages a stop left waiting were not read (%s: %s); their "
                      "parts expire in %.0f s unless the rest comes", type(e).__name__, e, NOT_RECORDED_KEEP)
            return 0
        now, n = time.time(), 0
        for i in range(0, len(got) - 1, 2):
            try:
                key, pdu, reading = read_member(got[i])
                addr = key[0]
                delay = max(self.proxy.settings.concat_timeout, min(NOT_RECORDED_KEEP, float(got[i + 1]) / 1000 - now))
            except Exception as e:          # (a member this version cannot read: its parts expire)
                log.error("shared MO reassembly: a message a stop left waiting is unreadable (%s: %s)",
                          type(e).__name__, e)
                continue
            if key not in self.timers:
                # (before the proxy has started: its loop is not set yet)
                tm = asyncio.get_running_loop().call_later(delay, self._due, key)
                self.timers[key] = (tm, _GoneLink(addr), pdu, reading)
                n += 1
        if n:
            log.info("shared MO reassembly: %d 5656 messages in parts a stop left waiting for the rest", n)
        return n

    async def _left_waiting(self, key, tm, link, pdu, reading) -> None:
        """A stop: the message stays in the server for the rest of its parts and the next start (module text);
        judged now with what arrived only if the server cannot take it."""
        loop = asyncio.get_running_loop()
        due = time.time() - loop.time() + tm.when()
        if not isinstance(link, _GoneLink):
            # armed when its first part came; one a start restored (its link gone) is armed for its due time already:
            # read as the first, each stop put off judging what arrived by another NOT_RECORDED_KEEP
            due += NOT_RECORDED_KEEP - self.proxy.settings.concat_timeout
        try:
            await self._call(self._defer, keys=[*keys_of(key)[:3], DUE], args=[
                # (the parts outlive their due time by KEEP: the start that judges them finds them there)
                int((NOT_RECORDED_KEEP + KEEP) * 1000), int(due * 1000), member_of(key, pdu, reading)])
        except Exception as e:
            self.stats["mo_shared_errors"] += 1
            log.warning("shared MO reassembly: a message from %r not left waiting (%s: %s): judged with what arrived",
                        key[1], type(e).__name__, e)
            await self._expired(key, link, pdu, reading)

    async def close(self, timeout: float | None = None) -> None:
        """At a stop (the proxy's drain, while the links are up, and serve's stop for what came since): the
        messages this process holds a timer for are left waiting in the server (module text), then the tasks
        under way end. No sweep starts from now."""
        self._sweeping.cancel()
        for key in list(self.timers):
            tm, link, pdu, reading = self.timers.pop(key)
            tm.cancel()
            self._spawn(self._left_waiting(key, tm, link, pdu, reading))
        end = time.monotonic() + (self.timeout * 4 + 1 if timeout is None else timeout)
        left = lambda: max(0.01, end - time.monotonic())    # noqa: E731
        if self.tasks:                              # the takes from the server, and the judging they start
            await asyncio.wait(set(self.tasks), timeout=left())
        await self.proxy.commands_written(left())   # the commands written and answered,
        if self.tasks:                              # and those not recorded put back
            await asyncio.wait(set(self.tasks), timeout=left())

