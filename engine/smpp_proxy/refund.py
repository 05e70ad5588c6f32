"""Giving back the advertiser-cap counts of a message the SMSC refused (submit.py, multi.py, relay.py)."""
from __future__ import annotations

from ..numbers import normalise_number
from .codec import constants as C

_GENERIC_NACK = C.GENERIC_NACK
_SUBMIT_MULTI_RESP = C.SUBMIT_MULTI | 0x80000000


class Refund:
    """The advertiser-cap counts of one message let through (Verdict.charged of each of its verdicts: a
    submit_multi has one per destination), given back (Pipeline.refund) once the SMSC has refused every
    PDU it was forwarded in (an error status, in time or late, or a generic_nack), or when it could not be
    forwarded at all; a submit_multi's destinations the SMSC lists as unsuccessful are given back each. A
    PDU the SMSC took, or one whose answer never came (a timeout, a lost link: it may have been
    delivered), keeps them."""
    __slots__ = ("verdicts", "left", "dests")

    def __init__(self, verdicts, pdus: int = 1, dests=None):
        self.verdicts, self.left = list(verdicts), pdus
        self.dests = dests              # a submit_multi's: each verdict's destination (normalised number)

    @staticmethod
    def of(v, pdus: int = 1) -> "Refund | None":
        return Refund((v,), pdus) if v.charged else None

    def refused(self, proxy) -> None:
        self.left -= 1
        if self.left == 0:
            for v in self.verdicts:
                proxy._refund(v)
            self.verdicts = []

    def answered(self, proxy, resp, command_id: int) -> None:
        """The SMSC's answer `resp` to the PDU of `command_id`, in time or late (None: none came, it keeps its
        counts): a generic_nack or the PDU's resp with an error status is a refusal; a submit_multi_resp
        taken may list unsuccessful destinations; another command's resp (the SMSC's fault: the message may
        have been sent) keeps them."""
        if resp is None:
            return
        rid = resp.command_id
        if rid == _GENERIC_NACK or (rid == command_id | 0x80000000 and resp.command_status):
            self.refused(proxy)
        elif rid == _SUBMIT_MULTI_RESP and resp.unsuccess_smes:
            self.unsuccessful(proxy, resp.unsuccess_smes)

    def unsuccessful(self, proxy, smes) -> None:
        """A submit_multi_resp taken with some destinations unsuccessful (ton, npi, address, error)."""
        if not self.dests:
            return
        failed = [normalise_number(a, ton) for ton, _, a, _ in smes]
        keep, dests = [], []
        for v, d in zip(self.verdicts, self.dests):
            if d is not None and d in failed:
                failed.remove(d)        # listed once: one of the destinations with that number
                proxy._refund(v)
            else:
                keep.append(v)
                dests.append(d)
        self.verdicts, self.dests = keep, dests
