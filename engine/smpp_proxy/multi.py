"""submit_multi: one message to several destinations, judged per destination and taken or refused whole
by the SMSC (`MultiSubmit._judge_multi`, called by the submit path, submit.py)."""
from __future__ import annotations

import time
from dataclasses import replace

from ..numbers import normalise_number
from ..verdict import ALLOW_NO_HITS, Action, dropped_with
from .codec import constants as C
from .codec import pdu as P
from .concat import concat_id
from .refund import Refund

_DROP, _TAG = Action.DROP, Action.TAG
_perf_counter = time.perf_counter
_STAT_KEY = {a: f"verdict_{a}" for a in Action}
_PDU_NAME = {c: P.name_of(c) for c in (C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM)}



def multi_dests(pdu) -> list:
    """A submit_multi's SME destinations, and "" for its distribution lists (judged on everything but the
    recipient: their members are known only to the SMSC)."""
    dests = [d[3] for d in pdu.dest_addresses if d[0] == 1]
    if len(dests) < len(pdu.dest_addresses):
        dests.append("")
    return dests


def _concat_ids(key, msgs) -> list:
    """The `"concat"` of each destination's line of concatenated message `key` (None: not named): a message to
    each recipient, so one identity per destination (a late part's lines tie to their own destination's)."""
    if key is None:
        return [None] * len(msgs)
    if len(msgs) == 1:
        return [concat_id(key)]             # the same message as a submit_sm's parts to that handset
    out = []
    for m in msgs:
        n = normalise_number(m.recipient, m.recipient_ton)
        out.append(concat_id((key, str(m.recipient if n is None else n))))
    return out


def multi_dest_tons(pdu) -> list:
    """The type of number of each of multi_dests(pdu) (0 for its distribution lists)."""
    tons = [d[1] for d in pdu.dest_addresses if d[0] == 1]
    if len(tons) < len(pdu.dest_addresses):
        tons.append(0)
    return tons


class MultiSubmit:
    """Mixin of `SmppProxy`: submit_multi judging and answers."""

    def _judge_multi(self, sess, pdu, dests, text, binary, reading, when, parts=None, link=None,
                     on_verdict=None, commit=True, counted=None, concat=None) -> None:
        """A submit_multi: one message to several destinations, which the SMSC takes whole or refuses whole.
        Every destination is judged first with nothing committed; a drop for any of them drops the PDU and
        nothing is counted. Otherwise each is judged again in order, committed (each sees the counts of the
        ones before it: a number listed twice is two messages to it), and the PDU is forwarded with the
        first tag. Every destination is logged with its own verdict, or, when the PDU was dropped for
        another's, dropped with a PDU_DROPPED hit naming it (never `allow`: it was not sent).
        With a shared state store the second pass's counts go to the server as one message (its script
        commits all of them or none) and a drop in that pass commits nothing either; in-process, a drop that
        only the second pass finds (the PDU puts a recipient over a cap by itself) gives back the advertiser-cap
        counts of the destinations before it (Pipeline.refund); their other counters keep the attempt.
        `parts`: the (session, PDU) of each part of a concatenated submit_multi (submit_concat.py), all answered
        alike (`pdu` is the first; `text` all of theirs), through `link` when given; `on_verdict(v)` is told the
        message's verdict (the dropping one, else the first tag, else the first) with `counted` the places every
        destination was counted in. `commit` false: the first pass decides (a late part: its message was counted
        when it was judged; its lines say `late`). `counted`: Message.counted of each destination. `concat`: the
        reassembly key of a concatenated message that may have late parts, or of a late part's (its lines name
        it: `_concat_ids`)."""
        extra = (parts, link, on_verdict, not commit, concat)
        what = _PDU_NAME[pdu.command_id]
        judge = self.pipeline.judge
        s_ton = pdu.source_addr_ton
        msgs = [self._message(sess, pdu.source_addr, d, text, when, s_ton, t)
                for d, t in zip(dests, multi_dest_tons(pdu))]
        if counted is not None:
            for m in msgs:
                m.counted = counted
        out = []
        for m in msgs:
            t0 = _perf_counter()
            out.append((judge(m, False), (_perf_counter() - t0) * 1e6))
        if not commit or any(v.action is _DROP for v, _ in out):
            return self._multi_answer(sess, pdu, msgs, out, what, binary, reading, None, *extra)
        shared = self.pipeline.state.shared
        if shared is not None:
            shared.begin()
        out = []
        for m in msgs:
            t0 = _perf_counter()
            out.append((judge(m), (_perf_counter() - t0) * 1e6))
        if shared is None:
            if any(v.action is _DROP for v, _ in out):
                for v, _ in out:            # over a cap by itself: the advertiser-cap counts of the ones before
                    if v.charged:
                        self._refund(v)
            return self._multi_answer(sess, pdu, msgs, out, what, binary, reading, None, *extra)
        if any(v.action is _DROP for v, _ in out):
            shared.ops = []                 # the commits of the destinations before it: never sent to the server
            return self._multi_answer(sess, pdu, msgs, out, what, binary, reading, None, *extra)

        def settled(final):
            sess.in_flight -= 1
            self._multi_answer(sess, pdu, msgs, out, what, binary, reading, final, *extra)
            self.owed_nothing(sess)                  # an unbind that came while the verdict was settling
        sess.in_flight += 1
        # every destination's ops as one message: the server commits them all or none (a cap found full
        # there comes back as its rule's hit on ALLOW_NO_HITS)
        shared.settle(self.pipeline, ALLOW_NO_HITS, settled)

    def _multi_answer(self, sess, pdu, msgs, out, what, binary, reading, shared_verdict=None, parts=None, link=None,
                      on_verdict=None, late=False, concat=None) -> None:
        """Log each destination of a submit_multi and answer it: dropped if any verdict (or the shared
        store's, for all of them) drops it, else forwarded with the first tag."""
        drop = why = None
        for m, (v, _) in zip(msgs, out):
            if v.action is _DROP:
                drop = v
                why = f"destination {m.recipient!r}: {','.join(h.symbol for h in v.hits if h.action is _DROP)}"
                break
        if drop is None and shared_verdict is not None and shared_verdict.action is _DROP:
            drop = shared_verdict
            why = f"shared state: {','.join(h.symbol for h in shared_verdict.hits if h.action is _DROP)}"
        stats, vlog = self.stats, self.vlog
        for m, (v, us), cid in zip(msgs, out, _concat_ids(concat, msgs)):
            if drop is not None and v.action is not _DROP:
                v = dropped_with(v, f"not sent: the {what} was dropped whole ({why})", f"smpp:{what}")
            stats[_STAT_KEY[v.action]] += 1
            vlog.write_sms(m, what, v, us, binary, reading, late=late, concat=cid)
        targets = [(sess, pdu)] if parts is None else parts
        if drop is not None:
            if on_verdict is not None:
                on_verdict(drop)
            for s, p in targets:
                self._drop(s, [p], drop)
            return
        tag = next((v for v, _ in out if v.action is _TAG), None)
        if tag is None and shared_verdict is not None and shared_verdict.action is _TAG:
            tag = shared_verdict
        if on_verdict is not None:
            v = tag or out[0][0]
            held = [w.counted for w, _ in out if w.counted]
            # the late parts' places: every destination's (each is a message to its recipient)
            on_verdict(replace(v, counted=frozenset().union(*held)) if held else v)
        charged = [(v, normalise_number(m.recipient, m.recipient_ton)) for m, (v, _) in zip(msgs, out) if v.charged]
        # a concatenated one's counts are given back once the SMSC has refused every part (as a submit_sm's)
        refund = Refund([v for v, _ in charged], max(1, len(targets)), [d for _, d in charged]) if charged else None
        if not targets:
            for v, _ in charged:
                self._refund(v)                 # judged, counted and not sent (every part's bind is gone)
            return
        if parts is not None and self.pipeline.state.shared is not None:
            # a verdict that came later: still room for all its parts?
            link = self._pick_link(len(targets), account=sess.account.system_id)
            if link is None:
                for v, _ in charged:
                    self._refund(v)             # judged, counted and not sent
                for s, p in targets:
                    self._upstream_unavailable(s, p)
                return
        # each destination's line by its recipient and time: the sms_id lines of the PDU's message_id name them
        judged = [(m.recipient, m.time if m.submitted is None else m.submitted) for m in msgs] \
            if self.settings.smsc_log_message_ids else None
        for i, (s, p) in enumerate(targets):
            # one verdict covers all parts; a tag goes on every part (TLV), the prefix on the first only
            self._forward(s, p, tag, prefix=(i == 0), link=link, part=parts is not None, refund=refund, judged=judged)
