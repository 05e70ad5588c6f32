"""The proxy's default clock, read once per submit_sm: an aware UTC datetime of now, read with no Python call."""
import sys
from datetime import datetime, timedelta, timezone

from engine.app import build
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.server import SmppProxy
from engine.verdictlog import VerdictLog


def test_default_clock_is_utc_now_without_a_python_call():
    proxy = SmppProxy(build(with_model=False, persist=False), SmppSettings(), VerdictLog(open("/dev/null", "w")))
    calls = []

    def prof(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        t = proxy.clock()
    finally:
        sys.setprofile(None)
    assert t.tzinfo is timezone.utc and abs(datetime.now(timezone.utc) - t) < timedelta(seconds=5)
    assert calls == []
