"""The message_ids this proxy gives out itself, and what it answers about them.

A silent drop (smpp.toml `[drop] silent_symbols`) answers its submit with success and a local message_id (L, the
process's start time in ms and its pid in hex, -, a counter: never an id an earlier process gave out, submit.py)
and, when asked for, a REJECTD receipt. The ESME may then ask about that id as about any other: a query_sm is
answered as an SMSC answers for a message it rejected (message_state REJECTED, final_date the drop's time), a
cancel_sm is refused as for a message in a final state (ESME_RCANCELFAIL), and another account's query_sm or
cancel_sm of it gets ESME_RINVMSGID (as for a forwarded id, relay.py; a replace_sm of it is refused there,
ESME_RREPLACEFAIL, with its reason in the verdict log). None of it goes to the SMSC, which never had the message. The last
MAX_REMEMBERED ids are kept (~270 B each, ~18 MB when full: at 500 silent drops a second, the last ~2 minutes;
a count, not a time); an id forgotten, or an earlier process's, is unknown (relay.py).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from datetime import datetime, timezone

from .codec import constants as C
from .codec import pdu as P

MAX_REMEMBERED = 65_536
REJECTED = 8                    # SMPP 3.4 §5.2.28 message_state


class LocalIds:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self._n = itertools.count(1)
        self._issued: OrderedDict[str, tuple[str, str]] = OrderedDict()     # id -> (account, final_date)

    def issue(self, account: str, now: datetime) -> str:
        """A new local id for a message of `account` rejected at `now`."""
        mid = f"{self.prefix}{next(self._n):06d}"
        # SMPP 3.4 §7.1.1 absolute time, UTC: YYMMDDhhmmss, tenths, quarter hours from UTC, '+'
        self._issued[mid] = (account, now.astimezone(timezone.utc).strftime("%y%m%d%H%M%S") + "000+")
        if len(self._issued) > MAX_REMEMBERED:
            self._issued.popitem(last=False)
        return mid

    def answer(self, pdu, account: str):
        """The response to `pdu` (a query_sm or cancel_sm of `account`) when it names a local id this
        process gave out and still remembers, else None."""
        got = self._issued.get(getattr(pdu, "message_id", ""))
        if got is None:
            return None
        owner, final_date = got
        cid, seq = pdu.command_id, pdu.sequence_number
        if owner != account:
            return P.response_class(cid)(sequence_number=seq, command_status=C.ESME_RINVMSGID)
        if cid == C.QUERY_SM:
            return P.QuerySmResp(sequence_number=seq, message_id=pdu.message_id, final_date=final_date,
                                 message_state=REJECTED)
        return P.CancelSmResp(sequence_number=seq, command_status=C.ESME_RCANCELFAIL)
