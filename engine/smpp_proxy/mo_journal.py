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
link binds, which waits for what it wrote: `_restore_mo_parts_on_disk`) looks at each key's records:
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

A message judged whose parts made no command (a syntax error at concat_timeout: nothing in force, remembered
NOT_RECORDED_KEEP for its late part, mo.py) keeps its parts' records, and a marker whose payload is led by a 0
octet says so (`_mo_judged_no_command`); the next start remembers it with them, as judged, until NOT_RECORDED_KEEP
after that marker (mo_restore.py), so its late part has the whole text judged as without the restart, and the
syntax error is not told again. The report its late part makes names the parts' parts_id, and its done marker follows
(a crash between the two: the line says it is done).

A clean stop leaves messages whose parts are all journalled in the journal instead of judging them cut
short. A message whose command could not be recorded keeps its parts' records while mo.py remembers it
(`_mo_unwritten`, NOT_RECORDED_KEEP, at most max_pending_concat).

With a shared state store the parts are put together in Redis instead (engine/state/mo_parts.py).
"""
from __future__ import annotations

import heapq
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from ..disktrouble import trouble
from .codec import constants as C
from .codec import pdu_concat
from .codec import pdu as P
from .heldjournal import MAX_RECORD, RecordLog
from .mo_restore import (_ANSWERED, _HID, _PDU, _PID, _TEXT, NOT_RECORDED_KEEP, MoPartsRestore, _digest, _digests_raw,
                         _owner)
from .mo_restore import _BINARY, _LINK, _READING, RECORDED  # noqa: F401  (re-exported: mo.py imports them from here)

log = logging.getLogger("telfilter.smpp")

MARKER_KEEP = 120.0          # seconds a done message's marker stays (a crash before its answer reached the SMSC)
SWEEP_EVERY = 10.0           # seconds between two sweeps of the unrecorded messages' records (housekeeping)


class MoPartsJournal(MoPartsRestore):
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

    def open_mo_parts(self, path: Path, loop, adopt=()) -> int:
        """Read the parts the last run left (they go back in `mo_concat` when the proxy starts), with those in
        the journals `adopt` names (a pool's workers no longer started), and journal every part acknowledged
        from now on. Returns how many records were read."""
        # a record holds one PDU as the SMSC sent it (up to max_pdu) and its fields
        rl = RecordLog(path, "telfilter-mo-parts-writer", "5656 message part", self.stats, "mo_parts_journal",
                       max_record=max(MAX_RECORD, self.settings.max_pdu + 4096), trouble=trouble("shortcode_parts"))
        live = rl.open(loop, adopt=adopt)
        self.mo_log, self._mo_restore = rl, live
        self._mo_unwritten, self._mo_markers, self._mo_refused = OrderedDict(), [], OrderedDict()
        self._mo_done_digests, self._mo_sweep_at = {}, 0.0
        return len(live)

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
        self._mo_marked(_add_marker(rl, key, parts), self.loop.time() + max(MARKER_KEEP, self.settings.concat_timeout))
        for p in parts:
            p[_HID] = 0

        def gone(err):
            if err is not None:
                self.stats["mo_parts_not_recorded"] += 1
                rl.report(err)
            then()
        rl.gone_all(hids, gone)

    def _mo_judged_no_command(self, key, parts, until: float) -> None:
        """A message judged whose parts made no command (nothing in force; mo.py remembers it until `until` for its
        late part): its parts' records stay while it is remembered, and a marker says so (a restart remembers it
        with them: mo_restore.py), to go at `until`."""
        rl = self.mo_log
        if rl is None or rl.writer is None or not any(p[_HID] for p in parts):
            return
        self._mo_marked(_add_marker(rl, key, parts, True), until)
        self._mo_keep_unwritten(key, parts)

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


def _add_marker(rl, key, parts, no_command: bool = False) -> int:
    """The marker record of message `key` judged from `parts` (its parts' digests; `no_command`: its parts made
    none, mo_restore.py); its record id."""
    pid = next((p[_PID] for p in parts if p[_PID]), "")
    digests = {n: _digest(n, p[_TEXT]) for n, p in ((pdu_concat(p[_PDU])[2], p) for p in parts)}
    return rl.add(_owner(key, 0, pid, 0, time.time()), _digests_raw(digests, no_command), rl.report)


def _size(reports) -> int:
    """Where reports.jsonl ends now (0: no file, or no report store)."""
    try:
        return os.stat(reports.path).st_size if reports is not None else 0
    except OSError:
        return 0


def _answer(link, pdu, status: int = 0) -> None:
    """The SMSC's answer to one MO part (a no-op when its link has gone: the SMSC delivers it again)."""
    link.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number, command_status=status))
