"""SMPP 3.4 field limits (§4 tables, §5.2 definitions) and the status that refuses each.

C-Octet String sizes in the spec count the NUL terminator: destination_addr "Var. max 21"
is at most 20 address octets and a NUL. A string with no NUL within its maximum size is
refused with the field's own status (ESME_RINVDSTADR for destination_addr, ...); a body
that ends before the NUL is a truncated PDU (ESME_RINVCMDLEN). The scan for the NUL never
looks past the field's maximum, so a hostile body costs at most that many octets per field.

Responses (an SMSC's message_id, a bind_resp's system_id) are bounded only by the PDU:
refusing an SMSC's answer would lose a message the SMSC has already accepted.
"""
from __future__ import annotations

import re

from . import constants as C

# field name -> (maximum octets including the NUL, status that refuses it)
CSTRING_MAX = {
    "service_type": (6, C.ESME_RINVSERTYP),                 # §5.2.11
    "source_addr": (21, C.ESME_RINVSRCADR),                 # §5.2.8 (submit_sm, deliver_sm, ...)
    "destination_addr": (21, C.ESME_RINVDSTADR),            # §5.2.9
    "system_id": (16, C.ESME_RINVSYSID),                    # §5.2.1
    "password": (9, C.ESME_RINVPASWD),                      # §5.2.2
    "system_type": (13, C.ESME_RINVSYSTYP),                 # §5.2.3
    "address_range": (41, C.ESME_RBINDFAIL),                # §5.2.7
    "message_id": (65, C.ESME_RINVMSGID),                   # §5.2.23
    "schedule_delivery_time": (17, C.ESME_RINVSCHED),       # §5.2.15
    "validity_period": (17, C.ESME_RINVEXPIRY),             # §5.2.16
    "esme_addr": (65, C.ESME_RINVDSTADR),                   # §4.12.1 alert_notification
    "dl_name": (21, C.ESME_RINVDLNAME),                     # §5.2.27
}
# data_sm and alert_notification carry longer addresses (SMPP 3.4 §4.7.1, §4.12.1)
CSTRING_MAX_BY_COMMAND = {
    (C.DATA_SM, "source_addr"): (65, C.ESME_RINVSRCADR),
    (C.DATA_SM, "destination_addr"): (65, C.ESME_RINVDSTADR),
    (C.ALERT_NOTIFICATION, "source_addr"): (65, C.ESME_RINVSRCADR),
}
# §7.1.1: "YYMMDDhhmmsstnnp", p = '+' / '-' (absolute, quarter hours from UTC) or 'R' (relative)
TIME_FIELDS = {"schedule_delivery_time", "validity_period"}
_TIME = re.compile(r"\d{12}[0-9]\d\d[+\-R]\Z")


def cstring_limit(command_id: int, name: str) -> tuple[int, int] | None:
    """(maximum octets including the NUL, status) for a request's field, None if unbounded."""
    if command_id & C.RESP_BIT:
        return None
    return CSTRING_MAX_BY_COMMAND.get((command_id, name)) or CSTRING_MAX.get(name)


def valid_time(value: str) -> bool:
    """SMPP 3.4 §7.1.1: empty (NULL) or exactly 16 characters of the time format."""
    return not value or bool(_TIME.match(value))
