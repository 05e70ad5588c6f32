"""When a submitted message is delivered (SMPP 3.4 §7.1.1 schedule_delivery_time, absolute or relative):
pure functions of the field and the clock, no I/O. A message is judged at its delivery when that is later
than now, so the hour windows and the 24 h caps apply then (submit.py, relay.py's replace_sm)."""
from __future__ import annotations

from .codec import smpp_time
from .codec import constants as C


class TooFarAhead(ValueError):
    """A schedule more than max_schedule_days ahead (smpp.toml)."""


def delivery_time(schedule: str, now, max_days: float):
    """The instant a message with this schedule_delivery_time is delivered, if later than `now` (else None:
    at once). ValueError saying why when it is not a time (codec.fields.smpp_time) or is more than
    `max_days` ahead."""
    t = smpp_time(schedule, now)
    if t is None or t <= now:
        return None
    if (t - now).total_seconds() > max_days * 86400:
        raise TooFarAhead(f"is {(t - now).days} days ahead, over max_schedule_days ({max_days:g})")
    return t


def stored(pdu) -> bool:
    """Whether the SMSC keeps the message to deliver it later: its messaging mode is the default or store and
    forward. In datagram and forward (transaction) mode it does not store it (SMPP 3.4 §2.10.2-3): a schedule
    cannot hold it back, and it is judged as delivered at once."""
    return (getattr(pdu, "esm_class", 0) & C.ESM_MODE_MASK) not in (C.ESM_MODE_DATAGRAM, C.ESM_MODE_FORWARD)


def pdu_delivery(pdu, now, max_days: float):
    """A submitted PDU's delivery later than now, or None: at once, a data_sm (it has no schedule), one the SMSC
    does not store (`stored`), or a schedule that is not valid (each PDU's was checked when it came)."""
    sched = getattr(pdu, "schedule_delivery_time", "") if pdu.command_id != C.DATA_SM else ""
    if not sched or not stored(pdu):
        return None
    try:
        return delivery_time(sched, now, max_days)
    except ValueError:
        return None


def parts_spread(pdus, now, max_days: float) -> float:
    """Seconds between the earliest and the latest delivery of a concatenated message's parts (a part
    without a schedule goes now)."""
    times = [pdu_delivery(p, now, max_days) or now for p in pdus]
    return (max(times) - min(times)).total_seconds() if times else 0.0


def parts_delivery(pdus, now, max_days: float):
    """The delivery a concatenated message is judged at: its latest part's (the handset shows the message once
    that part is in); None when every part goes at once."""
    return max((t for t in (pdu_delivery(p, now, max_days) for p in pdus) if t is not None), default=None)


def parts_deliveries(pdus, now, max_days: float):
    """(first, last) of a concatenated message's parts, each part's schedule read once: `last` is the delivery it is
    judged at (parts_delivery; None when every part goes at once), `first` the earliest part's when it is earlier
    (`now` for a part that goes at once), else None: the handset receives that part then, so the message must pass
    there too (an ad whose first part is scheduled at 06:59:40 and its last at 07:00:30 has a part delivered
    outside 07:00-22:00, Decree 91)."""
    times = [pdu_delivery(p, now, max_days) for p in pdus]
    last = max((t for t in times if t is not None), default=None)
    if last is None:
        return None, None
    first = min(t or now for t in times)
    return (first if first < last else None), last


def validity_problem(validity: str, now, delivery) -> str | None:
    """Why a validity_period is refused ESME_RINVEXPIRY, or None. It is not a time (codec.fields.smpp_time: month
    13, nn over 48; a relative one counts from `now`, as the SMSC takes the message, SMPP 3.4 §7.1.1.2), or the
    message expires at or before its scheduled delivery (`delivery`), or before now (None): the SMSC would never
    deliver it, and an ad counted at its delivery would hold a place in its advertiser's cap for nothing."""
    try:
        t = smpp_time(validity, now)
    except ValueError as e:
        return f"{e}"
    if t is None or (t > delivery if delivery is not None else t >= now):   # (a relative 0: at most now, kept)
        return None
    return (f"expires at {t.isoformat()}, " +
            (f"not after its delivery at {delivery.isoformat()}" if delivery is not None else "already past"))
