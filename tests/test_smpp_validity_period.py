"""validity_period (SMPP 3.4 §7.1.1): one that is not a time (month 13, nn over 48), or that ends at or before the
message's scheduled delivery (or before now), is refused ESME_RINVEXPIRY with its reason in the verdict log and a
metric (stats["validity_invalid"]). Found by a time-handling probe: a validity of month 13 was forwarded (the
schedule field's same value is refused ESME_RINVSCHED), and an ad scheduled for 09:00 expiring at 08:00 was
counted in its advertiser's cap at 09:00 (and indexed to be cancelled) though the SMSC never delivers it."""
from datetime import datetime, timedelta, timezone

import pytest

from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.schedule import validity_problem
from tests.test_smpp_replace import _Session
from tests.test_smpp_schedule import AD, _run, pipe  # noqa: F401  (the fixture)

ICT = timezone(timedelta(hours=7))
NOW = datetime(2026, 3, 2, 21, 0, tzinfo=ICT)
TOMORROW_9 = datetime(2026, 3, 3, 9, 0, tzinfo=ICT)


def _ad(seq, dst, sched="", validity=""):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, schedule_delivery_time=sched,
                             validity_period=validity, short_message=AD))


@pytest.mark.parametrize("validity, delivery, why", [
    ("261302230000028+", None, "month 13"),
    ("260302230000049+", None, "49 quarter hours"),
    ("260303080000028+", TOMORROW_9, "not after its delivery at 2026-03-03T09:00:00"),
    ("260303090000028+", TOMORROW_9, "not after its delivery"),            # expires as it is delivered
    ("000000050000000R", TOMORROW_9, "not after its delivery"),            # relative: from now, 02:00
    ("260301080000028+", None, "already past"),
])
def test_validity_problem_says_why(validity, delivery, why):
    assert why in validity_problem(validity, NOW, delivery)


@pytest.mark.parametrize("validity, delivery", [
    ("", TOMORROW_9), ("260303090000128+", TOMORROW_9), ("000000130000000R", TOMORROW_9),
    ("000000000000000R", None),                      # a relative 0 is now: kept (the SMSC's reading of it)
    ("260302210000028+", None),                      # expires now, delivered now
])
def test_validity_problem_takes_a_validity_after_the_delivery(validity, delivery):
    assert validity_problem(validity, NOW, delivery) is None


def test_a_validity_that_is_not_a_time_is_refused_rinvexpiry_with_its_reason(pipe):  # noqa: F811
    sts, fwd, log, stats = _run(pipe, NOW, [_ad(5, "84912777003", "260303090000028+", "261302230000028+")])
    assert sts == [C.ESME_RINVEXPIRY] and not fwd
    assert log[-1]["action"] == "refuse" and log[-1]["status"] == C.ESME_RINVEXPIRY
    assert "validity_period '261302230000028+': month 13" in log[-1]["reason"]
    assert stats["validity_invalid"] == 1


def test_an_ad_expiring_before_its_scheduled_delivery_is_refused_and_not_counted(pipe):  # noqa: F811
    """Expiring at 08:00, delivered at 09:00: refused, and the cap's three places at 09:00 stay free."""
    dst = "84912777004"
    sts, fwd, log, _ = _run(pipe, NOW, [_ad(5, dst, "260303090000028+", "260303080000028+")] +
                            [_ad(6 + i, dst, "260303090000028+", "260303120000028+") for i in range(3)])
    assert sts == [C.ESME_RINVEXPIRY, 0, 0, 0], sts
    assert len(fwd) == 3 and "not after its delivery" in log[0]["reason"]


def test_a_replacement_whose_validity_ends_before_its_delivery_is_refused(pipe):  # noqa: F811
    with _Session(pipe, NOW) as t:
        mid = t.send(_ad(5, "84912777005", "260303090000028+")).message_id
        assert mid
        r = t.send(encode(P.ReplaceSm(sequence_number=6, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                                      schedule_delivery_time="", validity_period="260303080000028+",
                                      short_message=AD + b" 2")))
        assert r.command_status == C.ESME_RINVEXPIRY and not t.replaces()
        assert "not after its delivery at 2026-03-03T09:00:00" in t.log()[-1]["reason"]
        # a validity after it is taken
        ok = t.send(encode(P.ReplaceSm(sequence_number=7, message_id=mid, source_addr_ton=5, source_addr="SHOPABC",
                                       validity_period="260303120000028+", short_message=AD + b" 3")))
        assert ok.command_status == 0 and len(t.replaces()) == 1

