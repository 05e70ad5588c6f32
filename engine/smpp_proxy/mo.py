"""The MO path: a mobile-originated deliver_sm / data_sm from the SMSC (anything but a delivery
receipt) is judged once per message, then answered, applied as a 5656 command, or delivered to
an ESME.

Theory of operation. A message in one part is judged at once. A concatenated one (UDH IEI 0x00
/ 0x08, or the SAR TLVs) is judged once on the text of all its parts: a subscriber's 5656 report
longer than one SMS (67 characters a part in UCS-2, which Vietnamese with diacritics needs) is
one report with its whole content, not a cut report and a second "command" made of the rest;
and a spam MO is judged whole, not fragment by fragment. Its parts wait in `mo_concat` (a
concat.Reassembly, keyed by SMSC (mo_origin: its links' id_space, not a node's address), source_addr,
destination_addr, reference number and total: an SMSC may send the parts on different binds, and a
cluster's nodes each some of them), UNANSWERED when they are for an
ESME: nothing is acknowledged to the SMSC that could still be dropped or fail to be delivered
(an SMSC must then allow as many deliver_sm outstanding on a bind as a message has parts, or
the message waits `concat_timeout` and is judged with what arrived). Parts for the short code,
whose destination is this element, are acknowledged as they come (an SMSC with a window of one
sends the next part only then), once on disk (mo_journal.py: a crash or a stop between two parts
loses none), except the part that completes the message: it gets the
message's answer, so a command the journal cannot record (ESME_RX_T_APPN) is delivered again;
the message's text is kept (NOT_RECORDED_KEEP, for the SMSC's retry schedule) and the part that
comes again is judged with it, whole. When the last part is in,
`concat_timeout` passes, or `max_pending_concat` MO messages are waiting and another starts (the
oldest is judged first, with the parts it has), the message is judged (one verdict line) and
every part not yet answered gets the message's outcome:

    to the short code (text)  every part 0; the command applied and confirmed once, whole
    drop                      every part the verdict's command_status
    otherwise                 every part to one ESME receiver bind with room for all of them (the
                              destination prefix picks the account, as for one part); each part's
                              answer is the ESME's answer to it. No such bind: every part
                              ESME_RX_T_APPN (the SMSC delivers them all again)
    not recorded              every part ESME_RX_T_APPN (a 5656 command the journal could not take;
                              nothing of it is in force)

The verdict line of an MO is written once its route is known (`then` returns it: `_mo_outcome`), one line
per message: `account` the ESME account its deliver_sm went to, or "" with `status` ESME_RX_T_APPN when it was
for an ESME and no receiver bind could take it; "" for a drop or the short code.

Bounds: at most `max_pending_concat` MO messages wait for parts, and at most as many judged
without all their parts are remembered (each part's text cut at LATE_TEXT) so that a part coming
after its message was judged is judged on the whole text known then; a late part of a dropped
message is never let through; a short-code message is kept after it was judged, complete or
not, and a part of it that comes later (late, or sent again) is acknowledged and logged, not
applied again (the command was applied once: a report is counted once), unless the command could
not be recorded, when that part gets it recorded with the whole text, or what had arrived made no
command (a syntax error: nothing in force), when the whole text known then is judged (a report whose
first part came last; a restart meanwhile keeps it so: mo_journal.py). The same part again replaces
the waiting copy, which is answered ESME_RX_T_APPN at once (the submit path answers its older copy at once too). Parts
whose every link has gone by then are not judged: none was answered, and the SMSC delivers them
again on a new bind. `drain` and `stop` judge what waits (server.py), so every deliver_sm is
answered once; a short-code message whose parts are all on disk is left in the journal for the
next start instead (the SMSC delivers the rest then).

A 5656 command is written off the event loop (engine/groupcommit.py: one writer thread, every command
that arrives while one fsync runs in the next) and only then put in force, logged and answered; the
other traffic goes on meanwhile. While it is being written its message is remembered as WRITING: a
part of it that comes again then is answered ESME_RX_T_APPN (asked for again, by when the command is
recorded or not). A 5656 command the SMSC delivers again (serve killed before its answer, an answer lost or late)
is known by its digest before it is written, answered as its first delivery was and not applied again
(mo_redelivery.py; one on disk that raises as it is put in force is asked for again: `_apply_failed`).

With a shared state store (`--state redis://`: a pool of workers or several nodes, each with its own
binds, so an SMSC may send a message's parts to different processes), parts for the short code are
put together in Redis instead (engine/state/mo_parts.py: one report, whole, wherever its parts land);
parts for ESMEs still wait in the process they reached.
"""
from __future__ import annotations

import logging
import time
from functools import partial

from ..disktrouble import trouble
from ..pipeline import NotRecorded
from ..verdict import Action, Message
from ..rules.shortcode import addressed_to
from .codec import pdu_concat
from .codec import constants as C
from .concat import concat_id, joined, reading_of
from .mo_restore import made_no_command, mo_origin
from .mo_journal import (_ANSWERED, _BINARY, _LINK, _PDU, _PID, _READING, _TEXT, NOT_RECORDED_KEEP, RECORDED,
                         MoPartsJournal, _answer)
from .mo_late import WRITING, MoLatePath, _acks
from .mo_redelivery_path import MoRedeliveryPath, _open, hexed
from .submit import Refusal, message_content

log = logging.getLogger("telfilter.smpp")
_DROP = Action.DROP
_UDHI = C.ESM_UDHI


# a waiting MO part: [link, pdu, text, binary, reading, answered, journal record, parts_id] (mo_journal.py)
NO_ESME = object()              # _mo_outcome: for an ESME, and no receiver bind could take it


class MoPath(MoLatePath, MoRedeliveryPath, MoPartsJournal):
    """Mixin of `SmppProxy`: mobile-originated messages from the SMSC."""

    def handle_mo(self, link, pdu, ack):
        """An MO deliver_sm / data_sm from `link`; `ack(status)` answers it."""
        dest = getattr(pdu, "destination_addr", "")
        try:
            text, binary, reading = message_content(pdu, self.settings.smsc_text_reading)
        except Refusal as r:
            # permanent: an SMSC redelivers on a temporary error, and this PDU would fail again
            log.info("MO from %r refused: %s", pdu.source_addr, r.reason)
            self.vlog.write_refusal(self.clock(), type(pdu).__name__ + " MO", "", pdu.source_addr, dest,
                                    C.ESME_RX_P_APPN, r.reason)
            return ack(C.ESME_RX_P_APPN)
        if pdu.tlvs or pdu.esm_class & _UDHI:
            ci = pdu_concat(pdu)            # sound: message_content checked the UDH and the SAR TLVs
            if ci is not None and ci[1] > 1 and 1 <= ci[2] <= ci[1]:
                return self._mo_part(link, pdu, ci, text, binary, reading)
        self._judge_mo(pdu, text, type(pdu).__name__ + " MO", binary, reading,
                       lambda v: self._mo_outcome(v, link, ((pdu, ack),), binary), pdus=(pdu,), link=link)

    def _judge_mo(self, pdu, text, what, binary, reading, then, parts_id: str = "", late: bool = False,
                  concat: str | None = None, pdus=None, link=None) -> None:
        """Judge and log one MO message (`pdu`: its first part), then `then(verdict)`; the verdict is None
        when it is a 5656 command the journal could not take (logged as a refusal: the SMSC is to deliver
        it again). A 5656 command is written off the loop (engine/groupcommit.py), several in one fsync,
        and put in force, logged and `then` only once it is on disk; anything else, at once, logged after
        `then` routed it (what `then` returns: `_mo_outcome`). `parts_id`: the journalled parts it was put
        together from (mo_journal.py), named in its report. `late`: a part after its message was judged (and
        logged): its line says so, also when it got a 5656 command the journal could not record recorded.
        `concat`: the identity of a concatenated message that may have late parts, or of a late part's message
        (concat.concat_id), named on its line (the report ties the two). `pdus`: the message's parts, in part
        order, when a 5656 command it makes is to be known again if the SMSC delivers it again (mo_redelivery.py;
        None: a late part, looked up only as a copy of a command not put in force), `link` the one it came on (None:
        its parts came on several)."""
        dest = pdu.destination_addr
        msg = Message(sender=pdu.source_addr, recipient=dest, text=text, time=self.clock(), account="", direction="mo",
                      sender_ton=pdu.source_addr_ton, recipient_ton=pdu.dest_addr_ton)
        t0 = time.perf_counter()
        v, cmd = self.pipeline.judge_mo(msg)
        us = (time.perf_counter() - t0) * 1e6
        if cmd is None:
            # routed first, so that its one line names the ESME account it went to (module text); written
            # whatever routing did (an exception in it still leaves the verdict's line)
            routed = None
            try:
                routed = then(v)
            finally:
                if routed is NO_ESME:
                    self.vlog.write_sms(msg, what, v, us, binary, reading, C.ESME_RX_T_APPN, late, concat)
                else:
                    if routed:
                        msg.account = routed        # (judged with none: an MO comes from no ESME)
                    self.vlog.write_sms(msg, what, v, us, binary, reading, late=late, concat=concat)
            return None
        if parts_id and cmd.report is not None:
            cmd.report["parts_id"] = parts_id
        if self._redelivered(pdus, link, msg, what, v, cmd, us, binary, reading, then, late, concat):
            return
        done = partial(self._command_written, msg, what, v, cmd, us, binary, reading, then, late, concat)
        w = self.commands
        if w is not None and w.submit(cmd, done):
            return
        if w is not None and not w.closed:
            # MAX_WAITING commands wait for a stalled disk already: not recorded (asked for again), as when
            # the disk refuses; written here it could overtake an earlier command of the same subscriber
            self.stats["shortcode_writer_full"] += 1
            return done(OSError(f"{w.waiting} 5656 commands already wait for the disk"))
        done(self.pipeline.write_commands((cmd,))[0])           # no writer (or it has stopped): on the loop

    def _command_written(self, msg, what, v, cmd, us, binary, reading, then, late, concat, err) -> None:
        if err is not None:
            e = NotRecorded(f"5656 command not recorded ({err}); the sender should retry")
            # each one is in the verdict log (below); the service log says the disk trouble, not each command
            trouble("shortcode").failed(err, f"a 5656 command (MO from {msg.sender!r} to {msg.recipient}) not "
                                             "recorded: answered ESME_RX_T_APPN, the SMSC delivers it again")
            self.stats["shortcode_not_recorded"] += 1
            self._redelivery_settled(cmd, v, None, err)
            self.vlog.write_refusal(self.clock(), what, "", msg.sender, msg.recipient, C.ESME_RX_T_APPN, str(e),
                                    late, concat)
            return then(None)
        trouble("shortcode").ok()
        try:
            applied = self.pipeline.apply_command(cmd, v)    # (a HUY DNC: what it removed)
        except Exception:
            self._apply_failed(msg, what, cmd, late, concat)    # (on disk, not in force: asked for again)
            return then(None)
        self._redelivery_settled(cmd, v, applied, None)
        v = applied
        self.stats["shortcode_recorded"] += 1
        # a command completed by a late part (its message's first line was a refusal: not recorded) says `late`:
        # one message, counted once (its DNC change or report counted by this line, which made it)
        self.vlog.write_sms(msg, what, v, us, binary, reading, late=late, concat=concat,
                            mo=hexed(cmd.mo) if cmd.mo is not None else "")
        then(v)

    def _to_shortcode(self, pdu) -> bool:
        """For the short code as the pipeline judges it (a binary message to it too: it is judged a
        syntax error there, so it is answered and confirmed as one here, never offered to an ESME)."""
        p = self.pipeline
        return addressed_to(pdu.destination_addr, p.settings.shortcode, p.shortcode)

    def _mo_outcome(self, v, link, parts, binary: bool, confirm: bool = True, dest_pdu=None,
                    shortcode: bool | None = None) -> str | object | None:
        """Answer the parts [(pdu, ack)] of one MO message (one part unless concatenated) after its
        verdict `v` (None: not recorded); see the table in the module text. `ack(status)` answers
        its part to the SMSC; `link` is the one a confirmation goes out on; `dest_pdu` the message's
        first part when `parts` may be empty (short-code parts answered as they came); `shortcode`: the
        message is for the short code (default: its first part's destination). Returns the system_id of
        the ESME account its parts went to, NO_ESME when none could take them, else None (its verdict line
        says so: `_judge_mo`)."""
        if v is None:
            # temporary: the SMSC delivers it again, and nothing was confirmed or put in force
            for _, ack in parts:
                ack(C.ESME_RX_T_APPN)
            return
        pdu0 = parts[0][0] if parts else None
        if shortcode if shortcode is not None else self._to_shortcode(dest_pdu or pdu0):
            for _, ack in parts:
                ack(0)
            if confirm:
                self._confirm_shortcode(link, dest_pdu or pdu0, v)
            return
        dest = (dest_pdu or pdu0).destination_addr
        if v.action is _DROP:
            for _, ack in parts:
                ack(v.smpp_status)
            return
        target = self._mo_target(dest, len(parts), [p for p, _ in parts])
        if target is None:
            if self._mo_target(dest, len(parts)) is not None:
                self.stats["mo_too_long_for_v33"] += 1      # a bind of SMPP 3.3 was free, for a message it cannot take
            for _, ack in parts:
                ack(C.ESME_RX_T_APPN)      # no ESME bound for it: the SMSC retries later
            return NO_ESME
        for p, ack in parts:
            self._send_to_esme(target, p, lambda r, ack=ack: ack(_mo_status(r)))
        return target.account.system_id

    # ------------------------------------------------------------ concatenated MO
    def _mo_part(self, link, pdu, ci, text, binary, reading):
        if self.shared_mo is not None and not binary and self._to_shortcode(pdu):
            # with a shared state store: put together across processes (engine/state/mo_parts.py)
            return self.shared_mo.part(link, pdu, ci, text, reading)
        return self._mo_part_local(link, pdu, ci, text, binary, reading)

    @staticmethod
    def _mo_answer(link, pdu, status: int = 0) -> None:
        _answer(link, pdu, status)

    def _mo_part_local(self, link, pdu, ci, text, binary, reading):
        ref, total, n = ci
        key = (mo_origin(link), pdu.source_addr, pdu.destination_addr, ref, total)
        late = self.mo_concat.late(key, n, text, binary, self.loop.time(), pdu=pdu)
        if late is not None and late[0] is RECORDED and not self.mo_same_message(key, n, text):
            late = None                     # a new message reusing a done one's key (mo_journal.py)
        if late is not None:
            return self._mo_late(link, pdu, ci, late, binary, reading, key)
        self.stats["mo_concat_parts"] += 1
        part = [link, pdu, text, binary, reading, False, 0, ""]
        old = self.mo_concat.add(key, total, n, part, self.settings.max_pending_concat, self._mo_timer)
        if old is not None:
            # the same part again (the SMSC gave up on the first copy): the newest copy is the one
            # judged and answered; the earlier one is answered now, never left without a response
            self.stats["mo_concat_resent_parts"] += 1
            self._mo_records_gone((old,))
            if not old[_ANSWERED]:
                _answer(old[_LINK], old[_PDU], C.ESME_RX_T_APPN)
        if self.mo_concat.complete(key):
            self.mo_concat.judge_now(key)
        elif self._to_shortcode(pdu):
            # for this element: acknowledged as it comes (module text), once on disk (mo_journal.py)
            part[_ANSWERED] = True
            if not self._journal_part(link, pdu, key, n, part, self.mo_concat.pending[key]):
                _answer(link, pdu, 0)

    def _mo_timer(self, key):
        return self.loop.call_later(self.settings.concat_timeout, self._mo_due, key)

    def _mo_due(self, key):
        c = self.mo_concat.take(key)
        if c is None:
            return
        parts = c.ordered()
        live = [(x[_LINK], x[_PDU]) for x in parts if not x[_ANSWERED] and _open(x[_LINK])]
        answered = [x for x in parts if x[_ANSWERED]]
        if not live and not answered:
            # none of its parts can be answered: not judged (nothing recorded or confirmed); the SMSC
            # delivers them again on a new bind
            log.info("concatenated MO %s from %r: every link it came on has gone; not judged", key[3], key[1])
            self.stats["mo_concat_links_gone"] += 1
            return
        if len(parts) < c.total:
            log.info("concatenated MO %s from %r: %d of %d parts after %.0fs; judging what arrived",
                     key[3], key[1], len(parts), c.total, self.settings.concat_timeout)
            self.stats["mo_concat_incomplete"] += 1
        binary = any(x[_BINARY] for x in parts)
        text = joined([x[_TEXT] for x in parts], binary, c.parts)
        reading = reading_of(text, next((x[_READING] for x in parts if x[_READING]), None))
        pdu0 = parts[0][_PDU]
        # for the short code: so its first part says (a part answered as it came was for it)
        sc = bool(answered) or self._to_shortcode(pdu0)
        if sc:
            # while its command is being written, a part of it that comes again is asked for later
            self.mo_concat.remember(key, WRITING, self.loop.time() + NOT_RECORDED_KEEP, c,
                                    self.settings.max_pending_concat)

        def then(v):
            no_command = sc and len(parts) < c.total and v is not None and made_no_command(v)
            if sc or (v is not None and len(live) + len(answered) < c.total):
                # kept for the parts that come after it was judged (still to come, their link gone, sent again,
                # or -- a command not recorded -- asked again): judged late, on the whole text
                st = self.settings
                # (one for an ESME: concat_memory, as the submit path, so a part sent long after is still read
                # with the others; a 5656 command's memory follows its journal)
                # (a 5656 message whose parts made no command, nothing in force: as long as one not recorded, the
                # SMSC's retry schedule, for the part that makes it one; engine/state/mo_parts.py puts it back so)
                keep = max(st.concat_timeout, NOT_RECORDED_KEEP) if v is None or no_command else \
                    st.concat_timeout if sc else max(st.concat_timeout, st.concat_memory)
                until = self.loop.time() + self.mo_memory(key, keep)
                self.mo_concat.remember(key, v, until, c, self.settings.max_pending_concat)
            link = live[0][0] if live else next((x[_LINK] for x in parts if _open(x[_LINK])), parts[0][_LINK])
            if v is None or no_command:
                # not recorded, or no command: its parts' records stay (a restart puts them back, waiting or judged:
                # mo_journal.py) until a part sent again records it, or its memory ends
                if no_command:
                    self._mo_judged_no_command(key, parts, until)
                else:
                    self._mo_keep_unwritten(key, parts)
                return self._mo_outcome(v, link, _acks(live), binary, dest_pdu=pdu0, shortcode=sc)
            # in force: marked done on disk (its parts' records gone) before the part that completed it is answered
            # (at once, its route returned, unless journalled parts: the short code's, for no ESME)
            return self._mo_done(key, parts, lambda: self._mo_outcome(v, link, _acks(live), binary, dest_pdu=pdu0,
                                                                      shortcode=sc))

        pid = next((x[_PID] for x in parts if x[_PID]), "")
        # a message remembered for its late parts (then) names itself on its line, as they will on theirs
        cid = concat_id(key) if sc or len(live) + len(answered) < c.total else None
        self._judge_mo(pdu0, text, f"{type(pdu0).__name__} MO x{len(parts)}/{c.total}", binary, reading, then, pid,
                       concat=cid, pdus=tuple(x[_PDU] for x in parts))


def _mo_status(r) -> int:
    """What the SMSC is answered for an MO the ESME answered `r` (None: no answer in time): the ESME's status;
    ESME_RX_T_APPN (the SMSC delivers it again) for no answer and for a generic_nack that says 0 (a nack is no
    acknowledgement, whatever its status)."""
    if r is None or (r.command_id == C.GENERIC_NACK and not r.command_status):
        return C.ESME_RX_T_APPN
    return r.command_status
