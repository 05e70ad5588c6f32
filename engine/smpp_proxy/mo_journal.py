"""The parts of a 5656 message on disk before they are acknowledged, so a crash does not lose them.

A part of a concatenated MO for the short code that does not complete its message is acknowledged as it
comes (mo.py: an SMSC with a window of one sends the next part only then), so from then on only this
element has its text. Kept in memory only, a kill -9 between two parts lost it: the SMSC delivered only
the parts it had no answer for, and the report was judged without the rest.

Theory of operation. Such a part's PDU is journalled first (DATA_DIR/smpp/mo_parts[.wN].journal,
heldjournal.RecordLog: CRC-framed records, a writer thread of its own, several parts in one fsync) and
answered 0 once it is on disk (ESME_RX_T_APPN when it could not be written: the SMSC delivers it again).
Every part of one message carries the message's `parts_id` (random, 64 bits, given by its first part
journalled). When the message is judged and its command is on disk and in force, its parts' records go
(gone records, fsynced) *before* the part that completed it is answered.

The next start (`open_mo_parts` before the proxy starts; `_restore_mo_parts` as it starts, before any
link binds) puts the parts the journal holds back in `mo_concat`, answered already, each message with its
reassembly timer: the part still to come completes the message, or the timer judges what there is. Two
files are written (the report in reports.jsonl, then the gone records here), so a crash between the two
leaves the records of a message already reported: the report line carries the message's `parts_id`, and
a message whose id is in the reports written since its first part is not put back but remembered as
recorded (its completing part, delivered again since it had no answer, is acknowledged, not counted
twice). A DNC command has no such line: one sent in parts and caught in that window is applied again
when its last part comes again (the same registration, confirmed twice).

A clean stop leaves such messages in the journal (their parts answered, the rest still to come from the
SMSC) instead of judging them with the parts they have.

With a shared state store the parts are put together in Redis instead (engine/state/mo_parts.py).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from .codec import constants as C
from .codec import decode, pdu_concat
from .codec import pdu as P
from .heldjournal import RecordLog
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")

# a waiting MO part (mo.py's lists): the link it came on, the PDU, its text, binary, how its text was read,
# answered already (or being, once on disk), its journal record here (0: none), its message's parts_id ("": none)
_LINK, _PDU, _TEXT, _BINARY, _READING, _ANSWERED, _HID, _PID = range(8)
RECORDED = "recorded"        # the verdict a message restored as already reported gets (its late parts: acked)
REPORTS_MARGIN = 3600.0      # seconds before a message's first part its report may say it was judged (clock steps)


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
    # messages judged whose command was not recorded: key -> their parts' records, kept (a crash puts the
    # parts back) until a part sent again gets the command recorded; at most max_pending_concat
    _mo_unwritten: OrderedDict | None = None

    @property
    def mo_parts_writer(self):
        return self.mo_log.writer if self.mo_log is not None else None

    def open_mo_parts(self, path: Path, loop) -> int:
        """Read the parts the last run left (they go back in `mo_concat` when the proxy starts) and journal
        every part acknowledged from now on. Returns how many were read."""
        rl = RecordLog(path, "telfilter-mo-parts-writer", "5656 message part", self.stats, "mo_parts_journal")
        live = rl.open(loop)
        self.mo_log, self._mo_restore = rl, live
        self._mo_unwritten = OrderedDict()
        return len(live)

    def _restore_mo_parts(self) -> None:
        """(start) The parts read by `open_mo_parts`, back in the reassembly, each message with its timer;
        a message whose report is in reports.jsonl already only remembered as recorded."""
        live, self._mo_restore = self._mo_restore or [], None
        if not live:
            return
        rl, now = self.mo_log, self.loop.time()
        parts = []
        for hid, owner, raw in live:
            try:
                addr, src, dst, ref, total, n, pid, at = json.loads(owner)
                pdu = decode(raw)
                text, binary, reading = message_content(pdu, self.settings.smsc_text_reading)
                ci = pdu_concat(pdu)
                if ci is None or tuple(ci) != (ref, total, n) or (pdu.source_addr, pdu.destination_addr) != (src, dst):
                    raise ValueError("its concatenation header is not the one recorded")
            except (ValueError, TypeError, KeyError, Refusal) as e:
                log.error("a 5656 message part in %s could not be read back (%s): left out", rl.journal.path, e)
                rl.gone(hid)
                continue
            key = (addr if isinstance(addr, str) else tuple(addr), src, dst, ref, total)
            parts.append((key, n, [_GoneLink(key[0]), pdu, text, binary, reading, True, hid, str(pid)], float(at)))
        pids = {p[_PID] for _, _, p, _ in parts}
        # a report is judged after every part it has came: none of these can be in a line older than the oldest
        since = min((at for *_, at in parts), default=time.time()) - REPORTS_MARGIN
        reports = getattr(self.pipeline, "reports", None)
        done = reports.parts_recorded(pids, since) if reports is not None and pids else set()
        back = 0
        for key, n, part, _ in parts:
            if part[_PID] in done:
                # reported before the crash, its records not yet gone: remembered as recorded, never judged again
                self.mo_concat.settled(key, RECORDED, now + _keep(), self.settings.max_pending_concat)
                rl.gone(part[_HID])
                continue
            old = self.mo_concat.add(key, key[4], n, part, self.settings.max_pending_concat, self._mo_timer)
            if old is not None:
                self._mo_records_gone((old,))
            back += 1
        for key in [k for k in self.mo_concat.pending if self.mo_concat.complete(k)]:
            self.mo_concat.judge_now(key)           # (its last part came while the last run was stopping)
        if done:
            log.warning("%d 5656 message(s) in parts were reported before the last run ended; their parts' records "
                        "are dropped (not counted twice)", len(done))
        if back:
            log.info("%d parts of 5656 messages acknowledged in the last run put back to wait for the rest", back)

    def _journal_part(self, link, pdu, key, n: int, part: list, c) -> bool:
        """A part for the short code that does not complete its message: answered 0 once on disk. False
        (the caller answers it at once, as before) without a journal."""
        rl = self.mo_log
        raw = getattr(pdu, "raw", b"")
        if rl is None or rl.writer is None or not raw:
            return False
        pid = next((p[_PID] for p in c.parts.values() if p[_PID]), "") or os.urandom(8).hex()
        part[_PID] = pid
        owner = json.dumps([key[0], key[1], key[2], key[3], key[4], n, pid, time.time()])

        def written(err):
            if err is not None:
                # not on disk: asked for again (its copy sent again replaces this one, answered already)
                self.stats["mo_parts_not_recorded"] += 1
                rl.forget(part[_HID])
                part[_HID] = 0
                rl.failed(err)
                log.error("part %d of a 5656 message from %r not recorded (%s): the SMSC delivers it again",
                          n, pdu.source_addr, err)
                return _answer(link, pdu, C.ESME_RX_T_APPN)
            _answer(link, pdu, 0)
        part[_HID] = rl.add(owner, bytes(raw), written)
        return True

    def _mo_records_gone(self, parts, done=None) -> None:
        """The records of `parts` go (their message is in force, or a copy sent again replaced them); `done(err)`
        once that is on disk (at once when there were none)."""
        rl = self.mo_log
        hids = []
        for p in parts:
            if p[_HID]:
                hids.append(p[_HID])
                p[_HID] = 0
        if rl is None or not hids:
            return done(None) if done is not None else None
        rl.gone_all(hids, done)

    def _mo_keep_unwritten(self, key, parts) -> None:
        """A message whose command was not recorded: its parts' records stay until it is."""
        hids = [p for p in parts if p[_HID]]
        if self._mo_unwritten is None or not hids:
            return
        u = self._mo_unwritten
        u[key] = hids
        u.move_to_end(key)
        while len(u) > self.settings.max_pending_concat:
            _, old = u.popitem(last=False)
            self._mo_records_gone(old)

    def _mo_take_unwritten(self, key) -> list:
        u = self._mo_unwritten
        return u.pop(key, []) if u is not None else []

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
        """Clean stop: the journal rewritten with what still lives. Returns how many parts."""
        if self.mo_log is None:
            return 0
        return await self.mo_log.close()


def _keep() -> float:
    from .mo import NOT_RECORDED_KEEP
    return NOT_RECORDED_KEEP


def _answer(link, pdu, status: int) -> None:
    link.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number, command_status=status))
