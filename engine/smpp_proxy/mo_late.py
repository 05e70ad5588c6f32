"""A part of a concatenated MO that comes after its message was judged (mo.py's module text is the theory of
operation): judged on the whole text known then, never let through when its message was dropped; for the short code,
acknowledged once its message's command is in force, or the part that records it (a command not recorded, or one on
disk not put in force: mo_redelivery_path.py). Moved out of mo.py (its size), no behaviour change."""
from __future__ import annotations

import logging
from functools import partial

from ..verdict import Action
from .codec import constants as C
from .concat import concat_id, reading_of
from .mo_journal import _PID, RECORDED, _answer
from .mo_restore import made_no_command

log = logging.getLogger("telfilter.smpp")
_DROP = Action.DROP
WRITING = object()              # the verdict of a short-code message whose command is being written


def _acks(parts) -> tuple:
    """[(link, pdu)] -> ((pdu, ack), ...) for `_mo_outcome`."""
    return tuple((p, partial(_answer, link, p)) for link, p in parts)


class MoLatePath:
    """Mixin of `SmppProxy` (through mo.MoPath): a concatenated MO's part after its message was judged."""

    def _mo_late(self, link, pdu, ci, late, binary, reading, key):
        """A part after its message was judged: judged on the whole text known now; never let
        through when the message was dropped."""
        earlier, whole = late
        reading = reading_of(whole, reading)
        what = f"{type(pdu).__name__} MO part {ci[2]}/{ci[1]} late"
        if earlier is WRITING:
            # its message's command is being written: this copy is asked for again (by then it is
            # recorded, and the copy is acknowledged; or not, and the copy gets it recorded, whole)
            self.stats["mo_concat_while_writing"] += 1
            return _answer(link, pdu, C.ESME_RX_T_APPN)
        shortcode = earlier is RECORDED or self._to_shortcode(pdu)
        if earlier is None or (shortcode and not made_no_command(earlier)):
            if earlier is not None:
                # the command was applied once, with what had arrived: a report is not counted twice
                log.info("late part %d/%d of a short-code message from %r: acknowledged, not applied again",
                         ci[2], ci[1], pdu.source_addr)
                self.stats["mo_concat_late_shortcode"] += 1       # (its message has its verdict line)
                return _answer(link, pdu, 0)
            # a short-code command the journal could not record: this part is its redelivery, judged whole
            self.mo_concat.settle(key, WRITING)
            kept = self._mo_take_unwritten(key)         # its parts' records (mo_journal.py)

            def recorded(v):
                self.mo_concat.settle(key, v)
                if v is None:
                    self._mo_keep_unwritten(key, kept)
                    return self._mo_outcome(v, link, _acks(((link, pdu),)), False, shortcode=True)
                self._mo_done(key, kept, lambda: self._mo_outcome(v, link, _acks(((link, pdu),)), False,
                                                                  shortcode=True))
            return self._judge_mo(pdu, whole, what, False, reading, recorded, next((p[_PID] for p in kept), ""),
                                  late=True, concat=concat_id(key))

        kept = []
        if shortcode:
            # what had arrived made no command (nothing in force): the whole text known now may make one, put in
            # force once; meanwhile a copy of a part is asked for again, and a later part finds it recorded
            self.mo_concat.settle(key, WRITING)
            kept = self._mo_take_unwritten(key)         # its parts' records (mo_journal.py), the report names them

        def then(v):
            if shortcode:
                self.mo_concat.settle(key, earlier if v is None else v)
                if v is not None and not made_no_command(v):
                    # in force: marked done on disk, its parts' records gone, before this part is answered
                    return self._mo_done(key, kept, lambda: self._mo_outcome(v, link, _acks(((link, pdu),)), binary))
                self._mo_keep_unwritten(key, kept)
            if v is not None and earlier.action is _DROP and v.action is not _DROP:
                v = earlier
            # the subscriber is told again only when the whole text is another command than the part(s) were
            confirm = v is None or not v.hits or not earlier.hits or v.hits[0].symbol != earlier.hits[0].symbol
            return self._mo_outcome(v, link, _acks(((link, pdu),)), binary, confirm)
        self._judge_mo(pdu, whole, what, binary, reading, then, next((p[_PID] for p in kept), ""), late=True,
                       concat=concat_id(key))
