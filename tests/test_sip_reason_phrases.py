"""A rule's `sip_code` (any final error code 400-699) is answered with its reason phrase: RFC 3261 §21's, RFC 8197's
607 Unwanted (the code for unwanted calls), RFC 8688's 608 Rejected. An unlisted code went out as "486 Error"."""
import pytest

from engine.sip_screen.codec import make_response, parse_datagram

from .sip_helpers import invite


@pytest.mark.parametrize("code, reason", [(486, "Busy Here"), (480, "Temporarily Unavailable"), (404, "Not Found"),
                                          (604, "Does Not Exist Anywhere"), (607, "Unwanted"), (608, "Rejected"),
                                          (603, "Decline")])
def test_a_drop_code_goes_out_with_its_reason_phrase(code, reason):
    r = make_response(parse_datagram(invite()), code)
    assert r.to_bytes().startswith(f"SIP/2.0 {code} {reason}\r\n".encode())


@pytest.mark.parametrize("code, reason", [(200, "OK"), (180, "Ringing"), (183, "Session Progress")])
def test_the_screens_own_non_error_answers_have_their_reason_phrase(code, reason):
    """The screen's own 200s (an OPTIONS addressed to it, the CANCEL of an INVITE it answered itself) went out as
    "SIP/2.0 200 Error": REASONS held 100 and the error codes only."""
    r = make_response(parse_datagram(invite()), code)
    assert r.to_bytes().startswith(f"SIP/2.0 {code} {reason}\r\n".encode())
