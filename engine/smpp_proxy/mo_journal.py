"""The parts of a 5656 message on disk before they are acknowledged, so a crash does not lose them.

A part of a concatenated MO for the short code that does not complete its message is acknowledged as it
comes (mo.py: an SMSC with a window of one sends the next part only then), so from then on only this
element has its text. Kept in memory only, a kill -9 between two parts lost it: the SMSC delivered only
the parts it had no answer for and the report was judged without the rest (a chaos probe found it).
Now the part's PDU is journalled first (DATA_DIR/smpp/mo_parts[.wN].journal, heldjournal.RecordLog:
a writer thread, several parts in one fsync) and answered 0 once it is on disk (ESME_RX_T_APPN when
it could not be written: the SMSC delivers it again). Its record goes when its message is judged. The
next start (`open_mo_parts` before the proxy starts, `_restore_mo_parts` as it starts, before any link
binds) puts the parts the journal holds back in `mo_concat`, answered already, with their reassembly
timer: the part still to come completes the message, or the timer judges what there is.

With a shared state store the parts are put together in Redis instead (engine/state/mo_parts.py).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .codec import decode
from .codec import constants as C
from .codec import pdu_concat
from .heldjournal import RecordLog
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")
_HID = 6                    # a waiting MO part's journal record (mo.py's part list: link, pdu, ..., answered, hid)


class _GoneLink:
    """The link of a part read back from the journal: it came on a connection of the last run."""
    transport = None
    available = False

    def __init__(self, addr):
        self.addr = addr

    def send_pdu(self, pdu) -> None:     # (never called: such a part was answered in the last run)
        pass


class MoPartsJournal:
    """Mixin of `SmppProxy` (with MoPath): 5656 message parts journalled until their message is judged."""

    mo_log: RecordLog | None = None
    _mo_restore: list | None = None

    def open_mo_parts(self, path: Path, loop) -> int:
        """Read the parts the last run left (they go back in `mo_concat` when the proxy starts) and journal
        every part acknowledged from now on. Returns how many were read."""
        rl = RecordLog(path, "telfilter-mo-parts-writer", "5656 message part")
        live = rl.open(loop)
        self.mo_log, self._mo_restore = rl, live
        return len(live)

    def _restore_mo_parts(self) -> None:
        """(start) The parts read by `open_mo_parts`, back in the reassembly, each with its message's timer."""
        live, self._mo_restore = self._mo_restore or [], None
        n = 0
        for hid, owner, raw in live:
            try:
                addr, src, dst, ref, total, part_no = json.loads(owner)
                pdu = decode(raw)
                text, binary, reading = message_content(pdu, self.settings.smsc_text_reading)
                ci = pdu_concat(pdu)
                if ci is None or (ci[0], ci[1], ci[2]) != (ref, total, part_no):
                    raise ValueError("its concatenation header is not the one recorded")
            except (ValueError, TypeError, KeyError, Refusal) as e:
                log.error("a 5656 message part in %s could not be read back (%s): left out", self.mo_log.journal.path, e)
                self.mo_log.gone(hid)
                continue
            key = (tuple(addr), src, dst, ref, total)
            part = [_GoneLink(key[0]), pdu, text, binary, reading, True, hid]
            old = self.mo_concat.add(key, total, part_no, part, self.settings.max_pending_concat, self._mo_timer)
            if old is not None:
                self._mo_parts_gone((old,))
            n += 1
        if n:
            log.info("%d parts of 5656 messages acknowledged in the last run put back to wait for the rest", n)

    def _acknowledge_part(self, link, pdu, key, n: int, part: list) -> None:
        """A part for the short code that does not complete its message: answered 0 once on disk (mo.py)."""
        rl = self.mo_log
        if rl is None or rl.writer is None or not pdu.raw:
            return link.send_pdu(_resp(pdu, 0))
        owner = json.dumps([list(key[0]), key[1], key[2], key[3], key[4], n])

        def written(err):
            if err is not None:
                # not on disk: asked for again (its copy sent again replaces this one, answered already)
                self.stats["mo_parts_not_recorded"] += 1
                rl.forget(part[_HID])
                part[_HID] = 0
                rl.failed(err)
                log.error("part %d of a 5656 message from %r not recorded (%s): the SMSC delivers it again",
                          n, pdu.source_addr, err)
                return link.send_pdu(_resp(pdu, C.ESME_RX_T_APPN))
            link.send_pdu(_resp(pdu, 0))
        part.append(0)
        part[_HID] = rl.add(owner, bytes(pdu.raw), written)

    def _mo_parts_gone(self, parts) -> None:
        """Parts whose message was judged (or replaced by a copy sent again): their records go."""
        rl = self.mo_log
        if rl is None:
            return
        for p in parts:
            hid = p[_HID] if len(p) > _HID else 0
            if hid:
                p[_HID] = 0
                rl.gone(hid)

    async def close_mo_parts(self) -> None:
        if self.mo_log is not None:
            await self.mo_log.close()


def _resp(pdu, status: int):
    from .codec import pdu as P
    return P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number, command_status=status)
