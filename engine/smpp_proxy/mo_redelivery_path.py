"""The proxy's side of mo_redelivery.py (its theory of operation): a 5656 command's digest looked up before it is
written, the window rebuilt at start and kept up with the lines other processes write, and a copy answered."""
from __future__ import annotations

import logging
from collections import OrderedDict

from ..verdict import ALLOW_NO_HITS
from .codec import constants as C
from .filetail import Tail
from .mo_redelivery import FOLLOW_EVERY, WRITING, Redeliveries, Unapplied, digest, hexed
from .mo_redelivery_files import _journal_line, _recent_digests, _report_line

log = logging.getLogger("telfilter.smpp")

# seconds a 5656 command's journal time ("at": when it was judged) may precede the look that missed its line (its
# write behind a slow fsync): a look after a fold reads dnc.delta.recent's lines since the last look less this. As
# lists/journal.py's _REORDERED, the delay its fold allows (10 s missed a line a 30 s disk stall held back) (at
# MAX_KEPT / WINDOW, ~170 commands a second: 10,200 lines, 12 ms on the loop once per fold, measured; 10 s: 2.4 ms)
REORDERED = 60.0


class MoRedeliveryPath:
    """Mixin of `SmppProxy` (through mo.MoPath): a 5656 command's digest looked up before it is written."""

    redeliveries: Redeliveries | None = None
    _tails: tuple = ()                  # (reports.jsonl, dnc.delta) as last read (`_follow_redeliveries`)
    _follow_at = 0.0
    _looked = 0.0                       # the wall clock at the last look (`_follow_redeliveries`)
    _unapplied_parts: OrderedDict | None = None     # concat id -> the digest of its message's Unapplied command

    def _restore_redeliveries(self) -> None:
        """(start, before any link binds) The window rebuilt from the files the commands were written in."""
        r = self.redeliveries = Redeliveries()
        p = self.pipeline
        if not getattr(p, "persist", False):        # (a benchmark's pipeline: no files)
            return
        reports = getattr(getattr(p, "reports", None), "path", None)
        store = getattr(p, "store", None)
        journal = store.delta_path if store is not None else None
        # (from where they end now: a line written meanwhile is read by both, and kept once)
        self._tails = (Tail(reports), Tail(journal)) if reports is not None and journal is not None else ()
        self._looked = self.clock().timestamp()
        try:
            n = r.restore(reports, tuple(journal.with_name(journal.name + x) for x in (".recent", ".prev", ""))
                          if journal else (), self.clock().timestamp())
        except OSError as e:
            log.error("start: the 5656 commands of the last %.0f s could not be read back (%s): a copy the SMSC "
                      "delivers again of one of them is applied again", r.window, e)
            return
        if n:
            log.info("%d 5656 command(s) of the last %.0f s remembered: a copy the SMSC delivers again is answered, "
                     "not applied again", n, r.window)

    def _follow_redeliveries(self, now: float) -> None:
        """(housekeeping, every FOLLOW_EVERY s) The commands other processes wrote in this data dir since the last
        look (the workers of a pool: an SMSC's copy of a command a worker killed -9 had written comes on another
        worker's bind); this process's own are known already."""
        if not self._tails or now < self._follow_at:
            return
        self._follow_at = now + FOLLOW_EVERY
        r, wall = self.redeliveries, self.clock().timestamp()
        for tail, read in zip(self._tails, (_report_line, _journal_line)):
            ino = tail.ino
            for line in tail.lines():
                if b'"mo_digest"' not in line:
                    continue                # (no 5656 command's line: not parsed)
                x = read(line)
                if x is not None and x[1] is not None:
                    r.learn(x[1], x[0], x[2], wall)
            if read is _journal_line and tail.ino != ino:
                # the journal was folded since the last look: lines appended before the fold and not read yet are
                # in dnc.delta.recent (lists/journal.py keep_recent); those known already are learned no second time
                for at, d, number in _recent_digests(tail.path.with_name(tail.path.name + ".recent"),
                                                     self._looked - REORDERED):
                    r.learn(d, at, number, wall)
        self._looked = wall

    def _redelivered(self, pdus, link, msg, what, v, cmd, us, binary, reading, then, late, concat) -> bool:
        """Before 5656 command `cmd` of MO `pdus` (that came on `link`; None: its parts on several) is written: True
        when it is a copy of one in the window, answered here (module text); else it is remembered as being written
        (`cmd.mo`: its digest, written with it). No `pdus` (a late part's message): True only for the copy of a
        message in parts `concat` whose command is on disk and was not put in force (`_apply_failed`)."""
        r = self.redeliveries
        number = cmd.dnc[1] if cmd.dnc is not None else None
        if not pdus:
            # (a late part's message: not looked up, unless its first judgement was on disk and not put in force)
            d = self._unapplied_parts.pop(concat, None) if concat and self._unapplied_parts else None
            held = r.held(d, number, cmd.ts) if d is not None and r is not None else None
            if held is None:
                return False
            if held[1]:         # (its number's later command, confirmed, stays in force: never undone by this copy)
                return self._superseded(d, None, msg, what, v, us, binary, reading, then, late, concat)
            return self._apply_held(d, held[0].cmd, number, None, -1, msg, what, v, us, binary, reading, then, late,
                                    concat)
        if r is None:
            r = self.redeliveries = Redeliveries()
        d = digest(pdus)
        mr = next((int.from_bytes(t.value, "big") & 0x7FFFFFFF for t in pdus[0].tlvs
                   if t.tag == C.TAG_USER_MESSAGE_REFERENCE), -1)      # (2 octets in SMPP 3.4; kept within an int32)
        first = r.seen(d, number, cmd.ts, mr)
        if first is not None and isinstance(first[0], Unapplied):
            if not first[2]:
                return self._apply_held(d, first[0].cmd, number, link, mr, msg, what, v, us, binary, reading, then,
                                        late, concat)
            first = (None, None, True)      # (superseded: the later command is in force after it on disk too)
        if first is not None and first[2] and first[0] is not WRITING:
            # a copy of a DNC command its subscriber has since followed with another (HUY DNC, its answer lost, then
            # DK DNC): known by its TP-MR, never applied over the later one, and not confirmed again (that reply
            # would contradict the later command's); also when its first answer went out in time on a link still
            # open (the subscriber's own repeat would carry another TP-MR than the one between)
            return self._superseded(d, first[0], msg, what, v, us, binary, reading, then, late, concat)
        if first is not None and first[1] is not None and _open(first[1]):
            first = None                # its first delivery was answered in time on a link still open: no copy
        elif first is not None and first[0] is not WRITING and cmd.dnc is not None and cmd.dnc[0] == "add" and \
                not all(self.pipeline.lists.in_dnc(number, c) for c in cmd.dnc[2]):
            # a DK DNC whose number is not (all) on the list now (an operator took it off since, or another node's
            # HUY DNC): its first delivery is not in force, so it is put in force again, never confirmed unapplied
            first = None
        if first is None:
            r.writing(d, number, cmd.ts, link, self.loop.time(), mr)
            cmd.mo = d
            if cmd.report is not None:
                cmd.report["mo_digest"] = hexed(d)
            return False
        if first[0] is WRITING:
            r.copied(d)
            self.stats["shortcode_redelivered_while_writing"] += 1
            self.vlog.write_refusal(self.clock(), what, "", msg.sender, msg.recipient, C.ESME_RX_T_APPN,
                                    "a copy of a 5656 command still being written: asked for again", late, concat,
                                    redelivery=True, mo=hexed(d))
            then(None)
            return True
        self.stats["shortcode_redelivered"] += 1
        v = first[0] or v
        self.vlog.write_sms(msg, what, v, us, binary, reading, late=late, concat=concat, redelivery=True, mo=hexed(d))
        then(v)
        return True

    def _superseded(self, d, answer, msg, what, v, us, binary, reading, then, late, concat) -> bool:
        """A copy of command `d` its number's later command superseded: answered 0, neither applied nor confirmed."""
        self.stats["shortcode_redelivered_superseded"] += 1
        self.vlog.write_sms(msg, what, answer or v, us, binary, reading, late=late, concat=concat, redelivery=True,
                            mo=hexed(d))
        then(ALLOW_NO_HITS)
        return True

    def _apply_held(self, d, held, number, link, mr, msg, what, v, us, binary, reading, then, late, concat) -> bool:
        """A copy of command `held` (digest `d`), on disk and asked for again when putting it in force raised: put in
        force now from there (not written again), answered and confirmed as a first delivery."""
        self.stats["shortcode_applied_on_copy"] += 1
        self.redeliveries.writing(d, number, held.ts, link, self.loop.time(), mr)
        self._command_written(msg, what, v, held, us, binary, reading, then, late, concat, None)
        return True

    def _apply_failed(self, msg, what, cmd, late, concat) -> None:
        """Command `cmd` of MO `msg` is on disk, and putting it in force raised: logged, counted, its verdict line a
        refusal (the caller answers ESME_RX_T_APPN: a temporary error, never a confirmation of what is not in
        force); its copy puts it in force, not written again (`Redeliveries.unapplied`; a message in parts: its
        copied part comes as a late part, mo_late.py `_mo_late`, known by its `concat` id)."""
        log.exception("a 5656 command (MO from %r to %s) on disk could not be put in force: answered ESME_RX_T_APPN, "
                      "the SMSC's copy puts it in force", msg.sender, msg.recipient)
        self.stats["shortcode_apply_failed"] += 1
        if cmd.mo is not None and self.redeliveries is not None:
            self.redeliveries.unapplied(cmd.mo, cmd)
            if concat:
                u = self._unapplied_parts = self._unapplied_parts or OrderedDict()
                u[concat] = cmd.mo
                while len(u) > self.settings.max_pending_concat:       # (as many as messages in parts remembered)
                    u.popitem(last=False)
        self.vlog.write_refusal(self.clock(), what, "", msg.sender, msg.recipient, C.ESME_RX_T_APPN,
                                "5656 command on disk not put in force (an error, logged); the sender should retry",
                                late, concat)

    def _redelivery_settled(self, cmd, v, applied, err) -> None:
        """Command `cmd` written (`err` None; `applied`: its verdict as put in force, `v` as judged) or not."""
        r = self.redeliveries
        if cmd.mo is None or r is None:
            return
        if err is not None:
            r.failed(cmd.mo)
        else:
            r.written(cmd.mo, applied if applied is not v else None, self.loop.time())


def _open(link) -> bool:
    t = getattr(link, "transport", None)
    return t is not None and not t.is_closing()
