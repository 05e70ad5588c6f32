"""A 5656 command whose text has two readings (codec.text.TwoReadings: UCS-2 that may be Latin-1, data_coding 1 read
as GSM for a control octet, JIS / KS C 5601 read in their encoding and as Latin-1) is parsed on one reading, not on
both joined by a newline: 'DK DNC' under data_coding 0x0E became 'DK DNC\\nDK DNC', a syntax error, and the
subscriber's DNC registration was answered as one and never recorded (found by review37)."""
from datetime import datetime, timezone

import pytest

from engine.smpp_proxy.codec.text import TwoReadings, read_text
from engine.verdict import Message
from tests.test_smpp_proxy import pipe  # noqa: F401  (fixture)


def _mo(text):
    return Message(sender="0912000901", recipient="5656", text=text, time=datetime(2026, 3, 2, 2, tzinfo=timezone.utc),
                   account="", direction="mo")


@pytest.mark.parametrize("dc,payload", [(0x0E, b"DK DNC V"), (0x05, b"DK DNC V"), (0x0A, b"DK DNC V")])
def test_a_registration_with_two_readings_is_a_registration(pipe, dc, payload):
    text, _ = read_text(dc, payload)
    assert type(text) is TwoReadings                   # (the case this is about)
    v, cmd = pipe.judge_mo(_mo(text))
    assert cmd is not None and cmd.dnc is not None and cmd.dnc[0] == "add", v.hits


def test_a_report_keeps_the_reading_that_parses_and_only_it(pipe):
    v, cmd = pipe.judge_mo(_mo(TwoReadings("S 0987000111 mua ngay \ufffd", "S 0987000111 mua ngay ?")))
    assert cmd is not None and cmd.report is not None
    assert "\n" not in cmd.report["content"]


def test_a_reading_that_is_no_command_falls_back_to_the_other(pipe):
    v, cmd = pipe.judge_mo(_mo(TwoReadings("\ue000\ue001\ue002", "DK DNC")))
    assert cmd is not None and cmd.dnc is not None and cmd.dnc[0] == "add", v.hits
