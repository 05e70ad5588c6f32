"""The dispatch of ESME PDUs (server.py's SmppProxy): the submit_sm hot path first, then answers to what we sent,
binds, enquire_link, unbind and the other requests, each in the bind states it is allowed in (codec FROM_ESME)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..listen import addr_text
from .accounts import TokenBucket
from .binds import BIND_NAMES
from .codec import constants as C
from .codec import pdu as P
from .codec.connection import FROM_ESME

if TYPE_CHECKING:
    from .esme import EsmeSession

_SUBMIT_SM = C.SUBMIT_SM
_FROM_ESME = FROM_ESME
# what an ESME may send at the account's throughput (messages), or once a connection (its bind, under the bind
# back-off of admission.py; its unbind); every other PDU it sends -- enquire_link, query_sm, cancel_sm, a bind or
# unbind out of turn, a response to nothing -- takes a token of the bind's bucket for other requests
# ([server] other_requests_*)
_PAID = frozenset((C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI, C.REPLACE_SM, C.QUERY_SM, C.CANCEL_SM, C.UNBIND, *BIND_NAMES))
_ABOUT_A_MESSAGE = (C.QUERY_SM, C.CANCEL_SM)      # answered here for a local id (local_ids.py)
_RESPONSES = (C.DELIVER_SM_RESP, C.DATA_SM_RESP, C.ENQUIRE_LINK_RESP, C.UNBIND_RESP, C.GENERIC_NACK)
log = logging.getLogger("telfilter.smpp")


class EsmeDispatch:
    def _admit_message(self, sess: EsmeSession, pdu, path=None, while_draining=False):
        """A submit_sm / data_sm / submit_multi (or a replace_sm, query_sm, cancel_sm: `path`) from a bound ESME:
        refused while draining (but a query_sm / cancel_sm: `while_draining`), then the account's rate bucket (one
        token; a message in SMS segments once judged: submit._charge), then the submit path."""
        if self.draining and not while_draining:                   # stopping: retryable, the ESME resends elsewhere or later
            self.stats["throttled_draining"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        acct = sess.account.system_id
        b = self.buckets.get(acct)
        if b is None:
            b = self.buckets[acct] = self.bucket_factory(sess.account.throughput)
        if not b.take():                    # one token; a longer message pays the rest once judged (_charge)
            self.stats["throttled"] += 1
            return sess.send_pdu(P.response_class(pdu.command_id)(sequence_number=pdu.sequence_number,
                                                                 command_status=C.ESME_RTHROTTLED))
        if path is None:
            return self._submit(sess, pdu)
        if pdu.command_id in _ABOUT_A_MESSAGE:          # (not on the submit path: a query_sm / cancel_sm only)
            local = self.local_ids.answer(pdu, acct)        # an id we gave out ourselves: a silent drop's
            if local is not None:
                return sess.send_pdu(local)
        return path(sess, pdu)

    def _query(self, sess: EsmeSession, pdu):
        return self._relay(sess, pdu, unknown=C.ESME_RQUERYFAIL if self.settings.cancel_unverified == "refuse" else None)

    def over_other_rate(self, sess: EsmeSession) -> bool:
        """One token of `sess`'s bucket for PDUs that are not messages (a sane ESME sends an enquire_link every
        30-60 s); True when it is empty (the PDU is answered ESME_RTHROTTLED). A bind refused
        other_requests_refused_close of them since its bucket was last full is closed: it ignores the throttling,
        and each answer, throttled or not, costs the loop as much (SIP and the other binds share it). The close
        of a bound one is a strike on its (source, system_id) bind back-off: a rebind at once waits."""
        b = sess.other_bucket
        if b is None:
            s = self.settings
            b = sess.other_bucket = TokenBucket(s.other_requests_per_second, s.other_requests_burst)
        if b.take():
            if b.tokens >= b.burst - 1:         # below the rate long enough to fill it again: no flood going on
                sess.other_refused = 0
            return False
        self.stats["esme_other_throttled"] += 1
        sess.other_refused += 1
        if sess.other_refused == self.settings.other_requests_refused_close:
            self.stats["esme_other_flood_closed"] += 1
            log.warning("closing bind %s from %s: %d requests other than messages refused over %s/s (burst %s)",
                        sess.account and sess.account.system_id, addr_text(*sess.peer[:2]), sess.other_refused,
                        b.rate, b.burst)
            self.loop.call_soon(sess.close)     # (not inside the inbox's slice: close handles its queue first)
            if sess.account is not None:        # its credentials' next bind from there waits (admission.py)
                self.bind_throttle.closed_for_flood(sess.peer[0], sess.account.system_id)
        return True

    def handle_esme_pdu(self, sess: EsmeSession, pdu):
        cid = pdu.command_id
        if cid == _SUBMIT_SM and cid in _FROM_ESME[sess.state.state]:
            return self._admit_message(sess, pdu)          # the hot path, tested first
        if cid in _RESPONSES:
            # an answer to what we sent is taken in any state: a receipt acknowledged just after the
            # ESME's unbind is delivered, not held and sent again
            if pdu.sequence_number > sess.answered_seq:
                sess.answered_seq = pdu.sequence_number
            ent = sess.window.pop(pdu.sequence_number, None)
            if ent:
                if cid != ent[2] and cid != C.GENERIC_NACK:
                    # an answer of another command's type (an enquire_link_resp for a deliver_sm) acknowledges
                    # nothing: as no answer (a receipt held and offered again, an MO the SMSC delivers again)
                    self.stats["esme_wrong_response"] += 1
                    log.info("ESME %s answered our 0x%08x with 0x%08x: taken as no answer",
                             sess.account and sess.account.system_id, ent[2] & 0x7FFFFFFF, cid)
                    pdu = None
                ent[0](pdu)
            elif (late := sess.late_answer(pdu.sequence_number)) != 0:
                # a late answer to a request of ours that timed out (its receipt held and offered again): an ESME
                # catching up on a backlog answers hundreds at once, and was closed as a flood of strays
                self.stats["esme_late_responses"] += 1
                if late is not None and cid in (C.DELIVER_SM_RESP, C.DATA_SM_RESP):
                    self.late_receipt_answer(late, pdu.command_status)   # its held copy (held.py)
            else:                           # an answer to nothing we sent: not answered, but no free PDU either
                self.over_other_rate(sess)
            return
        allowed = sess.state.allowed_from_esme(cid)
        # (a bind while another waits for its answer, up to the bind back-off, is refused ESME_RALYBND: not paid)
        paid = allowed and cid in _PAID and not (sess.bind_pending and cid in BIND_NAMES)
        if not paid and self.over_other_rate(sess):
            if not P.is_response(cid):      # SMPP 3.4 §5.1.3: ESME_RTHROTTLED in its own resp (enquire_link_resp too)
                sess.send_pdu(P.answer(cid, pdu.sequence_number, C.ESME_RTHROTTLED))
            return
        if not allowed:
            if P.is_response(cid):
                return
            status = C.ESME_RALYBND if cid in BIND_NAMES else C.ESME_RINVBNDSTS
            sess.send_pdu(P.answer(cid, pdu.sequence_number, status))
            return
        if cid in BIND_NAMES:
            if self.draining:
                return sess.send_pdu(P.response_class(cid)(sequence_number=pdu.sequence_number,
                                                          command_status=C.ESME_RBINDFAIL))
            return self._bind(sess, pdu)
        if cid == C.ENQUIRE_LINK:
            return sess.send_pdu(P.EnquireLinkResp(sequence_number=pdu.sequence_number))
        if cid == C.UNBIND:
            # no new requests from now on (ESME_RINVBNDSTS); the submits it sent before are answered
            # first (each within the SMSC link's response_timeout), then the unbind_resp, then the close
            sess.state.state = "UNBOUND"
            sess.unbind_seq = pdu.sequence_number
            self.judge_parts_of(sess)       # each of its parts answered before the unbind_resp too
            self.owed_nothing(sess)
            return
        if cid in (C.SUBMIT_SM, C.DATA_SM, C.SUBMIT_MULTI):
            return self._admit_message(sess, pdu)
        if cid == C.REPLACE_SM:             # new text for a stored message: judged (and paid for) as the message it becomes
            return self._admit_message(sess, pdu, self._replace)
        # query_sm and cancel_sm take a token of the account's throughput, as messages do (not the bind's bucket
        # for other requests: an ESME cancelling a campaign's scheduled ads sends them at its message rate)
        if cid == C.CANCEL_SM:              # relayed; a message cancelled gives its cap count back
            return self._admit_message(sess, pdu, self._cancel, while_draining=True)
        if cid == C.QUERY_SM:               # relayed; an id this process did not forward: as a cancel_sm's
            return self._admit_message(sess, pdu, self._query, while_draining=True)
        sess.send_pdu(P.GenericNack(sequence_number=pdu.sequence_number, command_status=C.ESME_RINVCMDID))
