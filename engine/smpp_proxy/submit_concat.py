"""The submit path's concatenated messages: an ESME's submit_sm / data_sm parts put together
(concat.py: the reassembly both directions share) and judged once, on the whole text; every part
is answered with its message's verdict (forwarded, tagged, dropped). Each part waits in
`self.concat`, unanswered, until its message is judged: when all parts are in, at `concat_timeout`
with what arrived, or when the table is at `max_pending_concat` messages or
`max_pending_concat_bytes` bytes of PDUs (the oldest first). A message whose parts hold more than
`max_message_chars` characters of text, or 4 times that in bytes (binary parts: their bytes are
what is held), is refused whole (ESME_RINVMSGLEN), its late parts too: none of it is forwarded. A
part that comes after its message was judged is judged on the whole text known then; one that takes
the message over `max_message_chars` is refused, as are those after it. A message whose parts are scheduled more
than PARTS_SPREAD seconds apart is refused ESME_RINVSCHED (judged at its latest part's delivery, an earlier part
would go out unjudged at its own time); one whose parts are scheduled apart within it is judged as of its first
part's delivery too (_parts_judged_at)."""
from __future__ import annotations

import logging

from ..numbers import normalise_number
from ..verdict import Action
from .refund import Refund
from .codec import constants as C
from .codec import pdu as P
from .concat import OVERLAP, REFUSED, SPREAD, concat_id, joined, reading_of
from .multi import multi_dest_tons, multi_dests
from .schedule import parts_deliveries, parts_delivery, parts_spread

log = logging.getLogger("telfilter.smpp")

_PDU_NAME = {c: P.name_of(c) for c in (C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM)}
_TOO_LONG = "concatenated message over max_message_chars (%d characters)"
# The parts of one message may be scheduled at most this many seconds apart (relative schedules of parts
# submitted seconds apart differ by that much); more is refused ESME_RINVSCHED: the message is judged at its
# latest part's delivery, and a part delivered hours or days before it would reach the handset unjudged at its
# own time (outside the hours, past a cap)
PARTS_SPREAD = 60
_OVERLAP_LATE = ("a part of a concatenated message refused whole: its parts and another message's (same originator "
                 "and reference) go to one handset")
# Message.counted of a message judged before all its parts came: it holds no place yet, and its verdict keeps
# the places it is counted in (Verdict.counted), where its late parts are not counted against it again
_NONE_YET = frozenset()
_SPREAD_LATE = "a part of a concatenated message refused for its parts' schedules (more than %d s apart)" % PARTS_SPREAD


def _party(addr: str, ton: int):
    """An address as parts are grouped by: the number it names (read with its type of number), else its text
    (an alphanumeric sender)."""
    n = normalise_number(addr, ton)
    return addr if n is None else n


def _to(pdu, dests):
    """Whom a part goes to, as parts are grouped by: a submit_sm's or data_sm's destination, a submit_multi's
    one destination (the same handset as a submit_sm's to it), or a submit_multi's destinations as a set."""
    if dests is None:
        return _party(pdu.destination_addr, pdu.dest_addr_ton)
    tons = multi_dest_tons(pdu)
    if len(dests) == 1:
        return _party(dests[0], tons[0])
    return ("multi",) + tuple(sorted(str(_party(d, t)) for d, t in zip(dests, tons)))


def _address_of(pdu, dests, party: str) -> tuple[str, int]:
    """The destination of a part (as sent, and its type of number) that `_to` names `party`."""
    if dests is None:
        return pdu.destination_addr, pdu.dest_addr_ton
    return next(((d, t) for d, t in zip(dests, multi_dest_tons(pdu)) if str(_party(d, t)) == party), (party, 0))


def _recipient(pdu) -> tuple[str, int]:
    """The one recipient of a part and its type of number: a submit_sm's or data_sm's destination, a
    submit_multi's only one."""
    if pdu.command_id != C.SUBMIT_MULTI:
        return pdu.destination_addr, pdu.dest_addr_ton
    return multi_dests(pdu)[0], multi_dest_tons(pdu)[0]


class ConcatSubmit:
    """Mixin of `SmppProxy` (with SubmitPath, whose _judge, _drop, _forward, _refuse it uses)."""

    # judged once per message (concat.py: the reassembly both directions share); the parts wait in
    # `self.concat`, each ESME part unanswered until its message is judged
    def _concat_part(self, sess, pdu, ci, text, binary, dests=None):
        # the handset puts parts together by originator and reference, however the ESME spelled the numbers
        # (0912…, 84912…, +84912…): so are they here (a probe split one message by spelling, judged part by part).
        # `dests`: a submit_multi's destinations (its parts are put together too: a probe split a link across two)
        key = (sess.account.system_id, _party(pdu.source_addr, pdu.source_addr_ton), _to(pdu, dests), ci[0], ci[1])
        st, now = self.settings, self.loop.time()
        # any part (the first, one of a message waiting, a late one) may complete text another message's parts
        # put on a handset they share
        if self._overlaps(sess, pdu, key, ci, text, binary, dests, now):
            return
        late = self.concat.late(key, ci[2], text, binary, now, st.max_message_chars, pdu)
        if late is not None:
            earlier, whole = late
            if earlier is REFUSED:
                return self._refuse(sess, pdu, C.ESME_RINVMSGLEN, _TOO_LONG % st.max_message_chars)
            if earlier is SPREAD:
                return self._refuse(sess, pdu, C.ESME_RINVSCHED, _SPREAD_LATE)
            if earlier is OVERLAP:
                return self._refuse(sess, pdu, C.ESME_RSUBMITFAIL, _OVERLAP_LATE)
            # a part after its message was judged (reassembly timeout, or pushed out by max_pending_concat):
            # judged on the whole text known now (and pays its segments), never let through when the
            # message was dropped, and never counted: its message was counted (or not) when it was judged
            # (each late part counted one more ad to its recipient: two ads in two parts counted four). Where
            # it was counted it holds its place (`counted`: the late part of the day's third ad to a recipient
            # was refused as a fourth); its verdict line says `late` and names its message (`concat`, as the
            # message's own line did): the report counts its message once, an ad its late part made one too
            self._charge(sess, pdu)
            counted = earlier.counted
            if dests is not None and len(dests) != 1:
                if earlier.action is Action.DROP:
                    return self._drop(sess, [pdu], earlier)
                if self._multi_too_long([(sess, pdu)], whole, dests):
                    return
                if self._link_to_judge(sess.account.system_id) is None:
                    return self._upstream_unavailable(sess, pdu)
                return self._judge_multi(sess, pdu, dests, whole, binary, reading_of(whole, None),
                                         parts_delivery([pdu], self._schedule_now(), self.settings.max_schedule_days),
                                         commit=False, counted=counted, concat=key)

            def judged(v, at):
                if earlier.action is Action.DROP and v.action is not Action.DROP:
                    v = earlier
                if v.action is Action.DROP:
                    return self._drop(sess, [pdu], v)
                # its sms_id line names the late part's own line (`at`), the verdict it went out on
                return self._forward(sess, pdu, v if v.action is Action.TAG else None, prefix=False, part=True,
                                     judged=at)
            rcpt, rcpt_ton = _recipient(pdu)
            return self._judge(sess, pdu.source_addr, rcpt, whole,
                               f"{_PDU_NAME[pdu.command_id]} part {ci[2]}/{ci[1]} late", binary,
                               reading_of(whole, None),
                               parts_delivery([pdu], self._schedule_now(), self.settings.max_schedule_days), then=judged,
                               s_ton=pdu.source_addr_ton, r_ton=rcpt_ton, commit=False, counted=counted, late=True,
                               concat=concat_id(key))
        old = self.concat.add(key, ci[1], ci[2], (sess, pdu, text, binary), st.max_pending_concat,
                              self._concat_timer, len(pdu.raw), st.max_pending_concat_bytes, len(text))
        if old is not None:
            # the same part again (an ESME retrying): the newest copy is the one judged and
            # forwarded; the earlier copy is answered now, never left without a response
            self.stats["concat_resent_parts"] += 1
            if not old[0].closed:
                old[0].send_pdu(P.response_class(old[1].command_id)(sequence_number=old[1].sequence_number,
                                                                   command_status=C.ESME_RSUBMITFAIL))
        c = self.concat.pending.get(key)
        if c is not None and (c.chars > st.max_message_chars or c.size > 4 * st.max_message_chars):
            # refused whole: every part it has now and any that comes later (never a part of it forwarded)
            c = self.concat.refuse(key, self.loop.time() + st.concat_timeout, st.max_pending_concat)
            for s, p, _, _ in c.ordered():
                if not s.closed:
                    self._refuse(s, p, C.ESME_RINVMSGLEN, _TOO_LONG % st.max_message_chars)
            return
        self._charge(sess, pdu)                          # held (and judged): its other segments
        if self.concat.complete(key):
            self.concat.judge_now(key)

    def _overlaps(self, sess, pdu, key, ci, text, binary, dests, now: float) -> bool:
        """A part of message `key`: True once it is refused because a handset it goes to gets other messages'
        parts with the same originator, reference and total (a submit_sm part to A and a submit_multi part to
        {A, B}, or submit_multi parts to {A, B} and {A, C}: grouped apart by their destinations, each would be
        judged on its fragment, while A's handset shows them as one message). Refused whole, with those others,
        while one of them waits for its parts (the handset would garble them anyway); when they were all judged
        (before all their parts came) this part is (and `key` whole), when the text the shared handset would
        show (their known parts, `key`'s, and this one) drops, or one of them was dropped or refused. Every part
        is checked, not only a message's first: with S part 1/3 to A judged alone, M part 2/3 to {A, B} reads
        harmless with it, and M's part 3/3 or S's late part 3/3, each judged with its own message's parts
        alone, put the link split in three whole on A's screen. Cost: a look-up per destination of the part."""
        st, concat = self.settings, self.concat
        handsets = key[2][1:] if type(key[2]) is tuple else (str(key[2]),)
        found = self.handsets.others(key, handsets, ci[0], ci[1],
                                     lambda k: k in concat.pending or concat.remembers(k, now))
        self.handsets.add(key, handsets, ci[0], ci[1], 2 * st.max_pending_concat,
                          lambda k: k in concat.pending or (concat.remembers(k, now) and
                                                            self._was_sent(concat.judged[k][0])))
        if not found:
            return False
        waits = concat.pending.get(key)
        if waits is not None:
            own = {i: p[2] for i, p in waits.parts.items()}
        elif concat.remembers(key, now):
            earlier, _, own, _ = concat.judged[key]
            if not self._was_sent(earlier):
                return False                            # refused or dropped: `late` says so for this part
        else:
            own = {}
        shared = found[0][0]
        why = (f"parts of a concatenated message (reference {ci[0]}, {ci[1]} parts) that go to {shared} with "
               "another message's parts sent to other destinations, same originator and reference")
        waiting = [other for _, other in found if other in concat.pending]
        if waiting:
            for other in waiting:
                c = concat.refuse(other, now + st.concat_timeout, st.max_pending_concat, OVERLAP)
                for s, p, _, _ in c.ordered():
                    if not s.closed:
                        self._refuse(s, p, C.ESME_RSUBMITFAIL, why + ": refused whole")
        elif all(self._was_sent(concat.judged[other][0]) for _, other in found):
            parts = {}
            for _, other in found:
                parts.update(concat.judged[other][2])
            parts.update(own)
            parts[ci[2]] = text
            rcpt, rcpt_ton = _address_of(pdu, dests, shared)
            v = self.pipeline.judge(self._message(sess, pdu.source_addr, rcpt,
                                                  joined([parts[i] for i in sorted(parts)], binary, parts),
                                                  parts_delivery([pdu], self._schedule_now(), st.max_schedule_days),
                                                  pdu.source_addr_ton, rcpt_ton), False)
            if v.action is not Action.DROP:
                return False
            why += ": the text that handset would show drops (" + \
                ",".join(h.symbol for h in v.hits if h.action is Action.DROP) + ")"
        else:
            why += ", which was not sent"
        self.stats["concat_overlap_refused"] += 1
        c = concat.refuse(key, now + st.concat_timeout, st.max_pending_concat, OVERLAP)     # its later parts too
        for s, p, _, _ in (c.ordered() if c is not None else ()):                          # and those waiting
            if not s.closed:
                self._refuse(s, p, C.ESME_RSUBMITFAIL, why)
        self._refuse(sess, pdu, C.ESME_RSUBMITFAIL, why)
        return True

    @staticmethod
    def _was_sent(earlier) -> bool:
        """A judged message's verdict let its parts through (not refused whole, not dropped)."""
        return earlier is not REFUSED and earlier is not SPREAD and earlier is not OVERLAP and \
            earlier.action is not Action.DROP

    def _remember_for_late_parts(self, key, v, c) -> None:
        """A message judged before all its parts came: its verdict and its parts' texts kept for the late ones
        (bounded: max_pending_concat messages)."""
        self.concat.remember(key, v, self.loop.time() + max(self.settings.concat_timeout, self.settings.concat_memory),
                             c, self.settings.max_pending_concat)

    def _concat_timer(self, key):
        return self.loop.call_later(self.settings.concat_timeout, self._concat_due, key)

    def _concat_due(self, key):
        c = self.concat.take(key)
        if c is None:
            return
        parts = c.ordered()
        live = [(s, p) for s, p, _, _ in parts if not s.closed]
        if len(parts) < c.total:
            log.info("concatenated message %s: %d of %d parts after %.0fs; judging what arrived",
                     key[3], len(parts), c.total, self.settings.concat_timeout)
        sess0, pdu0 = parts[0][0], parts[0][1]
        pdus, now, days = [p for _, p, _, _ in parts], self._schedule_now(), self.settings.max_schedule_days
        spread = parts_spread(pdus, now, days)
        if spread > PARTS_SPREAD:
            self.stats["schedule_invalid"] += 1
            why = (f"the parts of one concatenated message are scheduled {spread:.0f} s apart (at most "
                   f"{PARTS_SPREAD}): judged at its last part's delivery, the earlier parts would go out unjudged")
            for s, p in live:
                self._refuse(s, p, C.ESME_RINVSCHED, why)
            # refused whole: a part still to come too (never a part of it forwarded)
            self.concat.refuse(key, self.loop.time() + self.settings.concat_timeout, self.settings.max_pending_concat,
                               SPREAD)
            return
        # all the parts go through one link, which must have room for them all now: else every part
        # is throttled unjudged (the ESME sends them again), never some forwarded and some refused
        link = self._pick_link(max(1, len(live)), account=sess0.account.system_id)
        if link is None:
            for s, p in live:
                self._upstream_unavailable(s, p)
            return
        binary = any(b for _, _, _, b in parts)
        text = joined([t for _, _, t, _ in parts], binary, c.parts)
        reading = reading_of(text, None)            # (parts' UCS-2 read joined by octets too: said so)
        if type(key[2]) is tuple:
            # a submit_multi's parts to several destinations: judged per destination, taken or refused whole
            dests = multi_dests(pdu0)
            if self._multi_too_long(live, text, dests):
                # refused whole: a part still to come too (never a part of it forwarded)
                self.concat.refuse(key, self.loop.time() + self.settings.concat_timeout, self.settings.max_pending_concat)
                return
            remember = (lambda v: self._remember_for_late_parts(key, v, c)) if len(parts) < c.total else None
            when = self._parts_judged_at(sess0, pdu0, text, pdus, now, days, multi=True)
            return self._judge_multi(sess0, pdu0, dests, text, binary, reading, when, parts=live, link=link,
                                     on_verdict=remember, counted=_NONE_YET if remember is not None else None,
                                     concat=key if remember is not None else None)

        def judged(v, at):
            if len(parts) < c.total:
                self._remember_for_late_parts(key, v, c)
            if v.action is Action.DROP:
                for s, p in live:
                    self._drop(s, [p], v)
                return
            # a verdict that came later (shared state store) checks the room again
            to = link if self.pipeline.state.shared is None else self._pick_link(max(1, len(live)), account=sess0.account.system_id)
            refund = Refund.of(v, len(live))
            if to is None or not live:
                if refund is not None:
                    self._refund(v)                     # judged, counted and not sent
                for s, p in live:
                    self._upstream_unavailable(s, p)
                return
            for i, (s, p) in enumerate(live):
                # one verdict covers all parts; a tag goes on every part (TLV), the prefix on the first only
                self._forward(s, p, v if v.action is Action.TAG else None, prefix=(i == 0), link=to, part=True,
                              refund=refund, judged=at)
        rcpt, rcpt_ton = _recipient(pdu0)
        self._judge(sess0, pdu0.source_addr, rcpt, text,
                    f"{_PDU_NAME[pdu0.command_id]} x{len(parts)}/{c.total}", binary, reading,
                    self._parts_judged_at(sess0, pdu0, text, pdus, now, days, multi=False), then=judged,
                    s_ton=pdu0.source_addr_ton, r_ton=rcpt_ton,
                    counted=_NONE_YET if len(parts) < c.total else None,
                    # a message that may have late parts names itself on its line, as they will on theirs
                    concat=concat_id(key) if len(parts) < c.total else None)

    def _parts_judged_at(self, sess, pdu0, text, pdus, now, days, multi):
        """The instant a concatenated message is judged at: its latest part's scheduled delivery (the handset shows
        the message then; None: at once), unless its parts are scheduled apart and the message, judged uncounted
        as of its first part's delivery, is dropped there: then that instant, so it is dropped with that
        verdict (Decree 91: an ad whose first part reaches the handset at 06:59:40 is delivered outside
        07:00-22:00 even when its last part comes at 07:00:30). A drop commits nothing, so judging it again there
        counts nothing; parts scheduled apart are rare (the dry judging costs one judge per destination)."""
        first, last = parts_deliveries(pdus, now, days)
        if first is None:
            return last
        at = first if first > now else None
        if multi:
            msgs = [self._message(sess, pdu0.source_addr, d, text, at, pdu0.source_addr_ton, t)
                    for d, t in zip(multi_dests(pdu0), multi_dest_tons(pdu0))]
        else:
            rcpt, rcpt_ton = _recipient(pdu0)
            msgs = [self._message(sess, pdu0.source_addr, rcpt, text, at, pdu0.source_addr_ton, rcpt_ton)]
        judge = self.pipeline.judge
        return at if any(judge(m, False).action is Action.DROP for m in msgs) else last
