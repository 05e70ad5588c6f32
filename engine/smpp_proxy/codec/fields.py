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

import calendar
import re
from datetime import datetime, timedelta, timezone

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


_AFTER_LAST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def smpp_time(value: str, now: datetime) -> datetime | None:
    """SMPP 3.4 §7.1.1: the instant a time field (schedule_delivery_time, validity_period) names; None
    when empty (NULL: immediate delivery, the SMSC's default validity). `now` (timezone-aware) is what a
    relative time counts from: the moment the SMSC takes the message. ValueError saying why when the
    value is not a time.

    Absolute "YYMMDDhhmmsstnn+|-": local time fields, t tenths of a second, nn quarter hours (00-48) the
    local time is ahead (+) of or behind (-) UTC; the year is 20YY. Relative "YYMMDDhhmmsstnnR": that
    many years, months, days, hours, minutes and seconds after `now` (each field any two digits, the
    months added on the calendar, a day past the month's end taken back to its last day; t and nn are
    unused by the spec, written 000, and ignored here)."""
    if not value:
        return None
    if not _TIME.match(value):
        raise ValueError("not YYMMDDhhmmsstnnp (16 characters, p '+', '-' or 'R')")
    yy, mo, dd, hh, mi, ss = (int(value[i:i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        months = now.month - 1 + 12 * yy + mo
        year, month = now.year + months // 12, months % 12 + 1
        try:
            base = now.replace(year=year, month=month, day=min(now.day, calendar.monthrange(year, month)[1]))
        except (ValueError, OverflowError):
            raise ValueError("relative time beyond the year 9999") from None
        t = base + timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
        if t >= _AFTER_LAST:
            raise ValueError("relative time past 2099, the last year an absolute time can name")
        return t
    nn = int(value[13:15])
    if nn > 48:                                    # §7.1.1: 00-48
        raise ValueError(f"UTC offset of {nn} quarter hours (00-48)")
    if not 1 <= mo <= 12:
        raise ValueError(f"month {mo:02d}")
    if not 1 <= dd <= calendar.monthrange(2000 + yy, mo)[1]:
        raise ValueError(f"day {dd:02d} of month {mo:02d}")
    if hh > 23 or mi > 59 or ss > 59:
        raise ValueError(f"time of day {hh:02d}:{mi:02d}:{ss:02d}")
    off = timedelta(minutes=15 * nn)
    return datetime(2000 + yy, mo, dd, hh, mi, ss, 100_000 * int(value[12]),
                    timezone(off if value[15] == "+" else -off))
