"""Which account a delivery receipt's message_id names (routing.py routes the receipt): the id as the
submit_sm_resp wrote it, or its twin -- the same number written otherwise (in the other base, with other zero
padding or letter case), which an id space's SMSC is learnt to use from how its receipts matched
(`receipt_id_forms`). `_ReceiptIds` is a mixin of `DeliveryRouting` (it reads SmppProxy's `msgid_account`,
`receipt_id_forms`, `early_receipts` and `stats`).
"""
from __future__ import annotations

from .msgids import id_key

# Widths SMSCs pad message_ids to: 8 and 16 hex digits (32/64-bit), 10 and 20 decimal (SMPP 3.4 appendix B's
# "id:IIIIIIIIII"; a 64-bit counter)
_ID_WIDTHS = (8, 10, 16, 20)


def _written(v: int, fmts: str):
    """Number `v` written in each of the formats `fmts` ("d", "X", "x"), bare and zero-padded to _ID_WIDTHS."""
    for f in fmts:
        s = format(v, f)
        yield s
        for w in _ID_WIDTHS:
            if w > len(s):
                yield s.zfill(w)


def _twins(mid: str, same_base_first: bool = False) -> list:
    """The same number otherwise written, as (form, same_base) pairs: in the other base, bare or padded (hex forms
    of a decimal id, decimal forms of a hex one), and in the same base with other zero padding or letter case (an
    SMSC whose resp says 0000001A and receipt 1A or 0000001a, or resp 123 and receipt 0000000123). The other base
    first unless `same_base_first` (what the id space has matched by: "291" is 0x123 written in decimal by one
    SMSC, 0x291 written without its zeros by another)."""
    if not (mid.isascii() and mid.isalnum() and len(mid) <= 20):
        return []                   # (a Latin-1 digit such as '²' is isdigit() to Python, not int(): it raised)
    digits = mid.isdigit()
    try:
        h = int(mid, 16)
    except ValueError:
        h = None
    same = list(_written(int(mid), "d") if digits else _written(h, "Xx") if h is not None else ())
    other = list(_written(int(mid), "Xx")) if digits else []
    if h is not None:
        other += _written(h, "d")
    seen = {mid}
    return [(a, s) for group, s in (((same, True), (other, False)) if same_base_first else
                                    ((other, False), (same, True)))
            for a in group if not (a in seen or seen.add(a))]


class _ReceiptIds:
    """A receipt's message_id -> the account that sent the message (as sent, or by twin)."""

    # An SMSC may write a receipt's id in another base than its submit_sm_resp's (hex there, decimal in the
    # receipt, or the reverse), or in the same base with other zero padding or letter case. Such an id is never
    # found as it is, but its twin is: the same number otherwise written (_twins). A twin is NOT proof, though:
    # decimal digits read as hex name another number, so with an SMSC that keeps one base the twin of an id not
    # known yet (a receipt before its resp) or no longer (evicted) is often another message's id, maybe another
    # account's. So each id space counts how its receipts were matched (`receipt_id_forms`: [as sent, by twin,
    # by a twin of the same base]); a twin routes at once only in a space whose receipts have matched by twin
    # (at least as often as as sent), otherwise the receipt waits for its own id (receipt_wait, routing.py) and its
    # twin is tried when that wait ends, unless receipts of the space have matched as sent more often. An SMSC
    # that converts is learnt from its first receipt (one receipt_wait late); one that does not never routes by
    # twin once a receipt has matched as sent. Twins of the same base are tried first in a space where most
    # twin matches were of that kind.
    def _account_of(self, mid: str, space: str = ""):
        """The account that sent message `mid` (issued in id space `space`: the SMSC links' `id_space`)."""
        return self._owner_of(mid, space)[0]

    def _owner_of(self, mid: str, space: str = ""):
        """(account, key of the resp's id) of the message a receipt names as `mid`, or (None, None): the key is
        a twin's when the receipt wrote the id otherwise (what the resp's wait and the charged note are under)."""
        key = id_key(space, mid)
        acct = self.msgid_account.get(key)
        if acct is not None:
            self._id_form(space)[0] += 1
            return acct, key
        return self._twin_match(mid, space) if self._by_twin(space) else (None, None)

    def _id_form(self, space: str) -> list:
        f = self.receipt_id_forms.get(space)
        if f is None:
            f = self.receipt_id_forms[space] = [0, 0, 0]
        return f

    def _same_base_first(self, space: str) -> bool:
        f = self.receipt_id_forms.get(space)
        return f is not None and 2 * f[2] > f[1]

    def _by_twin(self, space: str, waited: bool = False) -> bool:
        """Whether a receipt whose own id is unknown may go by its twin: at once when twins have matched
        in this space at least as often as ids as sent; after its receipt_wait also when nothing has yet."""
        f = self.receipt_id_forms.get(space)
        if f is None:
            return waited
        return f[1] >= f[0] and (waited or f[1] > 0)

    def _early_twin(self, message_id: str, acct: str, space: str) -> None:
        """A resp's id names no waiting receipt as it is: in a space whose SMSC writes receipts in the other
        base, one waiting under its twin goes now (not at the end of its receipt_wait)."""
        if self._by_twin(space):
            q = self.early_receipts
            for t, same in _twins(message_id, self._same_base_first(space)):
                k = id_key(space, t)
                if k in q:
                    self.stats["receipts_by_twin_id"] += 1
                    return self._early_receipt_matched(k, acct, twin=True, same_base=same,
                                                       resp_key=id_key(space, message_id))

    def _twin_account(self, mid: str, space: str):
        return self._twin_match(mid, space)[0]

    def _twin_match(self, mid: str, space: str):
        """(account, key) of the first twin of `mid` known (_twins), or (None, None)."""
        for a, same in _twins(mid, self._same_base_first(space)):
            k = id_key(space, a)
            acct = self.msgid_account.get(k)
            if acct is not None:
                f = self._id_form(space)
                f[1] += 1
                f[2] += same
                self.stats["receipts_by_twin_id"] += 1
                return acct, k
        return None, None
