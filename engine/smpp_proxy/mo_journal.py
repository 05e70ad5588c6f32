"""The parts of a 5656 message on disk before they are acknowledged, so a crash does not lose them.

A part of a concatenated MO for the short code that does not complete its message is acknowledged as it
comes (mo.py: an SMSC with a window of one sends the next part only then), so from then on only this
element has its text. Kept in memory only, a kill -9 between two parts lost it: the SMSC delivered only
the parts it had no answer for, and the report was judged without the rest.

Theory of operation. Such a part's PDU is journalled first (DATA_DIR/smpp/mo_parts[.wN].journal,
heldjournal.RecordLog: CRC-framed records, a writer thread of its own, several parts in one fsync) and
answered 0 once it is on disk. One whose record could not be written is taken out of its message again
and answered ESME_RX_T_APPN (the SMSC delivers it again; its message waits for that copy); one its message
had used already (judged meanwhile) is answered so too, its message remembered for NOT_RECORDED_KEEP so
the copy is acknowledged as a late part, not counted again. Every part of a message carries the message's
`parts_id` (random, 64 bits; the report line names it) and where reports.jsonl ended when it was
journalled.

When the message's command is on disk and in force, a marker record is written -- its key, its parts_id,
its parts' digests (part number and 8 bytes of BLAKE2b of its text) -- then its parts' records end (the
writer keeps that order; one fsync when they share a batch), and only then is the part that completed it
answered. The marker lives for MARKER_KEEP (then it goes too, in housekeeping; at most max_pending_concat of
them). The next start (`open_mo_parts` before the proxy starts; `_restore_mo_parts` as it starts, before any
link binds) looks at each key's records:
- the parts of the message a marker names (its parts_id), or whose parts_id a report line names (read from
  where reports.jsonl ended when they were journalled: the crash fell between the report and the marker),
  are done: the message is remembered as recorded and marked so on disk (a marker written first if it had
  none, then its parts' records end) until NOT_RECORDED_KEEP after it was first marked, so its completing
  part, delivered again if its answer was lost, is acknowledged, not judged again, even across a second
  crash; a part whose digest differs from the marker's for its number is a new message reusing the key (an
  8-bit reference number wrapped) and is taken as one;
- any other parts (a message still waiting, or a newer one reusing the key) go back in `mo_concat`,
  answered already, to wait
  for the rest until NOT_RECORDED_KEEP after their first part came (an SMSC delivers again on its own retry
  schedule, minutes apart; not from each start), and are judged with what they have after that.
A DNC command has no line that names its parts: one sent in parts and caught between its journal line and
its marker is applied again when its completing part comes again (the same registration, confirmed twice).

A clean stop leaves messages whose parts are all journalled in the journal instead of judging them cut
short. A message whose command could not be recorded keeps its parts' records while mo.py remembers it
(`_mo_unwritten`, NOT_RECORDED_KEEP, at most max_pending_concat).

With a shared state store the parts are put together in Redis instead (engine/state/mo_parts.py).
"""
from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from ..disktrouble import trouble
from .codec import constants as C
from .codec import decode, pdu_concat
from .codec import pdu as P
from .heldjournal import MAX_RECORD, RecordLog
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")

# a waiting MO part (mo.py's lists): the link it came on, the PDU, its text, binary, how its text was read,
# answered already (or being, once on disk), its journal record here (0: none), its message's parts_id ("": none)
_LINK, _PDU, _TEXT, _BINARY, _READING, _ANSWERED, _HID, _PID = range(8)
RECORDED = "recorded"        # the verdict of a message restored as done already (its late parts: acknowledged)
MARKER_KEEP = 120.0          # seconds a done message's marker stays (a crash before its answer reached the SMSC)
SWEEP_EVERY = 10.0           # seconds between two sweeps of the unrecorded messages' records (housekeeping)
NOT_RECORDED_KEEP = 3600.0   # seconds a short-code message not recorded waits for its part again (mo.py)


class _GoneLink:
    """The link of a part read back from the journal: it came on a connection of the last run."""
    transport = None
    available = False

    def __init__(self, addr):
        self.addr = addr

    def send_pdu(self, pdu) -> None:     # (never called: such a part was answered in the last run)
        pass


class MoPartsJournal:
    """Mixin of `SmppProxy` (with MoPath): 5656 message parts journalled until their message is in force."""

    mo_log: RecordLog | None = None
    _mo_restore: list | None = None
    # messages judged whose command was not recorded: key -> their parts, whose records stay (a crash puts the
    # parts back) while mo.py remembers the message (until a part sent again gets it recorded)
    _mo_unwritten: OrderedDict | None = None
    _mo_markers: list | None = None      # heap of (until, hid): done messages' markers
    _mo_refused: OrderedDict | None = None   # keys whose message used a part then refused for its record
    _mo_done_digests: dict | None = None     # key -> {part number: digest}: messages remembered done at start

    @property
    def mo_parts_writer(self):
        return self.mo_log.writer if self.mo_log is not None else None

    def open_mo_parts(self, path: Path, loop) -> int:
        """Read the parts the last run left (they go back in `mo_concat` when the proxy starts) and journal
        every part acknowledged from now on. Returns how many records were read."""
        # a record holds one PDU as the SMSC sent it (up to max_pdu) and its fields
        rl = RecordLog(path, "telfilter-mo-parts-writer", "5656 message part", self.stats, "mo_parts_journal",
                       max_record=max(MAX_RECORD, self.settings.max_pdu + 4096), trouble=trouble("shortcode_parts"))
        live = rl.open(loop)
        self.mo_log, self._mo_restore = rl, live
        self._mo_unwritten, self._mo_markers, self._mo_refused = OrderedDict(), [], OrderedDict()
        self._mo_done_digests, self._mo_sweep_at = {}, 0.0
        return len(live)

    # ------------------------------------------------------------ the next start
    def _restore_mo_parts(self) -> None:
        """(start) The records read by `open_mo_parts`: messages done remembered as recorded, the others' parts
        back in the reassembly (module text)."""
        live, self._mo_restore = self._mo_restore or [], None
        if not live:
            return
        rl, wall = self.mo_log, time.time()
        keys: dict = {}                    # key -> {"parts": {pid: [(n, part, roff, at)]}, "markers": [...]}
        for hid, owner, raw in live:
            try:
                addr, src, dst, ref, total, n, pid, roff, at = json.loads(owner)
                n, pid, roff, at = int(n), str(pid), int(roff), float(at)
                key = (addr if isinstance(addr, str) else tuple(addr), src, dst, ref, total)
                k = keys.setdefault(key, {"parts": {}, "markers": []})
                if n == 0:                 # a done message's marker: its parts' digests
                    k["markers"].append((at, hid, pid, _digests_of(raw)))
                    continue
                pdu = decode(raw)
                text, binary, reading = message_content(pdu, self.settings.smsc_text_reading)
                ci = pdu_concat(pdu)
                if ci is None or tuple(ci) != (ref, total, n) or (pdu.source_addr, pdu.destination_addr) != (src, dst):
                    raise ValueError("its concatenation header is not the one recorded")
            except (ValueError, TypeError, KeyError, Refusal) as e:
                log.error("a 5656 message record in %s could not be read back (%s): left out", rl.journal.path, e)
                rl.gone(hid)
                continue
            part = [_GoneLink(key[0]), pdu, text, binary, reading, True, hid, pid]
            k["parts"].setdefault(pid, []).append((n, part, roff, at, raw))
        reports = getattr(self.pipeline, "reports", None)
        marked = {max(k["markers"])[2] for k in keys.values() if k["markers"]}
        ask = [(pid, min(x[2] for x in ps)) for k in keys.values() for pid, ps in k["parts"].items()
               if pid not in marked]
        found = set()
        if reports is not None and ask:
            # a report line is appended after every part it was put together from was journalled
            found = reports.parts_recorded({pid for pid, _ in ask}, min(r for _, r in ask))
        done = back = 0
        for key, k in keys.items():
            markers = sorted(k["markers"])
            for _, hid, _, _ in markers[:-1]:
                rl.gone(hid)               # (older messages of this key)
            marker = markers[-1] if markers else None
            dead = {pid for pid in k["parts"] if pid in found or (marker and pid == marker[2])}
            rest = [x for pid, ps in k["parts"].items() if pid not in dead for x in ps]
            reported = sorted(pid for pid in dead if pid in found)
            if reported and (marker is None or marker[2] not in reported):
                # a report line says it is done (written after any marker this key has: it is the newest message):
                # marked so now, first, then its parts' records go
                pid = reported[0]
                digests = {n: _digest(n, part[_TEXT]) for n, part, *_ in k["parts"][pid]}
                if marker is not None:
                    rl.gone(marker[1])
                marker = (wall, rl.add(_owner(key, 0, pid, 0, wall), _digests_raw(digests), rl.report), pid, digests)
            for pid in dead:
                self._mo_records_gone([part for _, part, *_ in k["parts"][pid]])
            if marker is not None and rest:
                rl.gone(marker[1])         # a newer message has this key: it is the one waiting
                marker = None
            if marker is not None:
                # done before the crash: remembered as recorded (its completing part, delivered again if its answer
                # was lost, is acknowledged), and marked so on disk (a second crash), until NOT_RECORDED_KEEP after
                # it was first marked done
                self._mo_remember_done(key, marker, wall)
                done += 1
                continue
            if not rest:
                continue
            # waiting for the rest: until NOT_RECORDED_KEEP after its first part came (the SMSC's retries), not
            # from each start -- and never longer (a first part "ahead" of the clock, after a step back of the
            # wall clock between the runs, waited as long as the step more: a day back, 25 h; found by the
            # clock-step probe), as a done marker (_mo_remember_done)
            first = min(x[3] for x in rest)
            delay = max(self.settings.concat_timeout, min(NOT_RECORDED_KEEP, first + NOT_RECORDED_KEEP - wall))
            pid = min(part[_PID] for _, part, *_ in rest)
            for n, part, roff, at, raw in rest:
                if part[_PID] != pid:
                    # (a stop's set-aside, then a part that came during the drain: one message, one id, on disk
                    # too, so that its report's line names every part of it)
                    hid = rl.add(_owner(key, n, pid, roff, at), raw, rl.report)      # (written before the old goes)
                    rl.gone(part[_HID])
                    part[_PID], part[_HID] = pid, hid
                old = self.mo_concat.add(key, key[4], n, part, self.settings.max_pending_concat,
                                         lambda k_, d=delay: self.loop.call_later(d, self._mo_due, k_))
                if old is not None:
                    self._mo_records_gone((old,))
                back += 1
        for key in [k for k in self.mo_concat.pending if self.mo_concat.complete(k)]:
            self.mo_concat.judge_now(key)           # (its last part came while the last run was stopping)
        if done:
            log.info("%d 5656 message(s) in parts were done before the last run ended: remembered, not judged again",
                     done)
        if back:
            log.info("%d parts of 5656 messages acknowledged in the last run put back to wait for the rest", back)

    def _mo_remember_done(self, key, marker, wall: float) -> None:
        at, hid, _, digests = marker
        now = self.loop.time()
        until = now + min(NOT_RECORDED_KEEP, at + NOT_RECORDED_KEEP - wall)
        if until <= now:
            self.mo_log.gone(hid)
            return
        self.mo_concat.settled(key, RECORDED, until, self.settings.max_pending_concat)
        self._mo_marked(hid, until)
        self._mo_done_digests[key] = digests

    def mo_same_message(self, key, n: int, text: str) -> bool:
        """A part coming for a message remembered as done at start: True when it is one of its parts (its
        digest, or a part number it had none for: the completing one). False: a new message reusing the key
        (the sender's reference number wrapped); its memory is forgotten and the part taken as new."""
        d = self._mo_done_digests.get(key) if self._mo_done_digests is not None else None
        if d is None or n not in d or d[n] == _digest(n, text):
            return True
        self._mo_done_digests.pop(key, None)
        self.mo_concat.forget(key)
        return False

    # ------------------------------------------------------------ while running
    def _journal_part(self, link, pdu, key, n: int, part: list, c) -> bool:
        """A part for the short code that does not complete its message: answered 0 once on disk. False
        (the caller answers it at once, as before) without a journal."""
        rl = self.mo_log
        raw = getattr(pdu, "raw", b"")
        if rl is None or rl.writer is None or not raw:
            return False
        pid = next((p[_PID] for p in c.parts.values() if p[_PID]), "") or os.urandom(8).hex()
        part[_PID] = pid
        reports = getattr(self.pipeline, "reports", None)
        owner = _owner(key, n, pid, _size(reports), time.time())

        def written(err):
            if err is None:
                rl.failed(None)
                return _answer(link, pdu, 0)
            # not on disk: asked for again. Still waiting in its message: taken out (the message waits for the
            # copy). Used already (its message judged meanwhile): the copy will be a late part, acknowledged
            self.stats["mo_parts_not_recorded"] += 1
            rl.forget(part[_HID])
            part[_HID] = 0
            rl.failed(err, f"part {n} of a 5656 message from {pdu.source_addr!r} not recorded: the SMSC delivers "
                           "it again")
            if self.mo_concat.drop_part(key, n, part):
                c = self.mo_concat.pending.get(key)
                if c is not None and not c.parts:          # (its only part: nothing waits)
                    self.mo_concat.take(key)
                    c.timer.cancel()
            else:
                # used by its message (judged, or being): remembered for NOT_RECORDED_KEEP, whatever it ends in
                self._mo_used_refused(key)
            _answer(link, pdu, C.ESME_RX_T_APPN)
        part[_HID] = rl.add(owner, bytes(raw), written)
        return True

    def _mo_done(self, key, parts, then):
        """A message in force: its marker written (with its parts' digests) and its parts' records gone, then
        `then()`; what it returns when that was at once (no records), else None."""
        rl = self.mo_log
        hids = [p[_HID] for p in parts if p[_HID]]
        if rl is None or rl.writer is None or not hids:
            return then()
        pid = next((p[_PID] for p in parts if p[_PID]), "")
        digests = {n: _digest(n, p[_TEXT]) for n, p in ((pdu_concat(p[_PDU])[2], p) for p in parts)}
        self._mo_marked(rl.add(_owner(key, 0, pid, 0, time.time()), _digests_raw(digests), rl.report),
                        self.loop.time() + max(MARKER_KEEP, self.settings.concat_timeout))
        for p in parts:
            p[_HID] = 0

        def gone(err):
            if err is not None:
                self.stats["mo_parts_not_recorded"] += 1
                rl.report(err)
            then()
        rl.gone_all(hids, gone)

    def _mo_used_refused(self, key) -> None:
        self.mo_concat.extend(key, self.loop.time() + NOT_RECORDED_KEEP)
        f = self._mo_refused
        f[key] = True
        f.move_to_end(key)
        while len(f) > self.settings.max_pending_concat:
            f.popitem(last=False)

    def mo_memory(self, key, keep: float) -> float:
        """How long mo.py remembers judged message `key`: `keep`, or NOT_RECORDED_KEEP when one of its parts was
        refused after its message had used it (that part comes again, maybe later than `keep`)."""
        f = self._mo_refused
        return max(keep, NOT_RECORDED_KEEP) if f is not None and f.pop(key, None) else keep

    def _mo_marked(self, hid: int, until: float) -> None:
        """A done message's marker `hid`, to go at `until` (at most max_pending_concat live: the nearest
        to going goes first)."""
        m = self._mo_markers
        heapq.heappush(m, (until, hid))
        if len(m) > self.settings.max_pending_concat:
            self.mo_log.gone(heapq.heappop(m)[1])

    def _mo_records_gone(self, parts) -> None:
        """The records of `parts` go (a copy sent again replaced them, their message is done or forgotten)."""
        rl = self.mo_log
        for p in parts:
            if p[_HID]:
                if rl is not None:
                    rl.gone(p[_HID])
                p[_HID] = 0

    def _mo_keep_unwritten(self, key, parts) -> None:
        """A message whose command was not recorded: its parts' records stay while it is remembered."""
        kept = [p for p in parts if p[_HID]]
        if self._mo_unwritten is None or not kept:
            return
        u = self._mo_unwritten
        u[key] = kept
        u.move_to_end(key)
        while len(u) > self.settings.max_pending_concat:
            self._mo_records_gone(u.popitem(last=False)[1])

    def _mo_take_unwritten(self, key) -> list:
        u = self._mo_unwritten
        return u.pop(key, []) if u is not None else []

    def _mo_expire(self, now: float) -> None:
        """(housekeeping) Markers past MARKER_KEEP go; so do the records of unrecorded messages no longer
        remembered (mo.py's memory of them expired or was pushed out)."""
        m, rl = self._mo_markers, self.mo_log
        if rl is None:
            return
        while m and m[0][0] <= now:
            rl.gone(heapq.heappop(m)[1])
        if now < self._mo_sweep_at:
            return
        self._mo_sweep_at = now + SWEEP_EVERY       # (up to max_pending_concat entries each: not every tick)
        remembers = self.mo_concat.remembers
        u = self._mo_unwritten
        for key in [k for k in u if not remembers(k, now)]:
            self._mo_records_gone(u.pop(key))
        d = self._mo_done_digests
        for key in [k for k in d if not remembers(k, now)]:
            del d[key]

    # ------------------------------------------------------------ stopping
    def _mo_journalled(self, c) -> bool:
        """A short-code message waiting whose every part is on disk (or being written) and answered: a clean
        stop leaves it for the next start instead of judging it with the parts it has."""
        return self.mo_parts_writer is not None and bool(c.parts) and all(
            p[_HID] and p[_ANSWERED] for p in c.parts.values())

    def _mo_set_aside(self) -> int:
        """(stop, drain) Messages whose parts are all journalled leave the reassembly unjudged (their timers
        cancelled); the next start puts them back. Returns how many."""
        keep = [k for k, c in self.mo_concat.pending.items() if self._mo_journalled(c)]
        for k in keep:
            c = self.mo_concat.take(k)
            c.timer.cancel()
        if keep:
            log.info("stop: %d 5656 message(s) in parts kept in %s for the next start (the SMSC delivers the rest)",
                     len(keep), self.mo_log.journal.path)
        return len(keep)

    async def close_mo_parts(self) -> int:
        """Clean stop: the journal rewritten with what still lives. Returns how many records."""
        if self.mo_log is None:
            return 0
        return await self.mo_log.close()


def _owner(key, n: int, pid: str, reports_at: int, at: float) -> str:
    """A record's fields beside its PDU: its message's key, its part number (0: the message's done marker,
    whose payload is its parts' digests), the message's parts_id, where reports.jsonl ended when the part was
    journalled, and when the record was written (epoch seconds)."""
    return json.dumps([key[0], key[1], key[2], key[3], key[4], n, pid, reports_at, at])


def _digest(n: int, text: str) -> bytes:
    return hashlib.blake2b(f"{n}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _digests_raw(d: dict) -> bytes:
    return b"".join(bytes((n,)) + dg for n, dg in sorted(d.items()))


def _digests_of(raw: bytes) -> dict:
    if len(raw) % 9:
        raise ValueError("a done marker's digests are not whole")
    return {raw[i]: bytes(raw[i + 1:i + 9]) for i in range(0, len(raw), 9)}


def _size(reports) -> int:
    """Where reports.jsonl ends now (0: no file, or no report store)."""
    try:
        return os.stat(reports.path).st_size if reports is not None else 0
    except OSError:
        return 0


def _answer(link, pdu, status: int = 0) -> None:
    """The SMSC's answer to one MO part (a no-op when its link has gone: the SMSC delivers it again)."""
    link.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number, command_status=status))
