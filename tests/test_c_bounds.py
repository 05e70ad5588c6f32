"""The C extensions at the edges of their buffers: inputs an AddressSanitizer build of them (tests/fuzz/README.md,
"Sanitizer build") found reading or writing outside a buffer, run here through the normal build and compared with
the pure-Python twin, which is the reference (a C answer is None, "undecided", or the Python one)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from engine.sip_screen import fastpath
from engine.sip_screen.transport import Pump

from .conftest import ROOT
from .test_sip_fuzz import OUR, REQUESTS


@pytest.mark.skipif(fastpath._c_in_dialog is None, reason="C extension not built")
@pytest.mark.parametrize("sport", [65535, 65536, -1, 2 ** 31, -2 ** 31, 2 ** 63 - 1, -2 ** 63])
def test_in_dialog_source_port_out_of_range(sport):
    """in_dialog() wrote the source port of a bare `;rport` with snprintf into a 16-byte buffer and copied the
    length snprintf returned: a port of 16 characters or more ("=-9223372036854775808") read past the buffer
    into the forwarded Via (stack-buffer-overflow). A port outside 0-65535 is now the Python path's."""
    data = REQUESTS[-2]                                  # a plain BYE with a bare rport: C decides it
    assert b";rport;" in data and fastpath._c_in_dialog(data, "::1", 5080, OUR, None) is not None
    c = fastpath._c_in_dialog(data, "::1", sport, OUR, None)
    py = fastpath.py_in_dialog(data, "::1", sport, OUR, None)
    assert c is None or c == py.astuple()
    r = fastpath.in_dialog(data, "::1", sport, OUR, None)
    assert b";rport=%d;" % sport in r.before + r.after


_UNREADY = """
from engine.sip_screen._sipfast import Pump
never = Pump.__new__(Pump)                       # no __init__
failed = Pump.__new__(Pump)                      # an __init__ that raised (max_n 0)
f = lambda *a: None
try:
    failed.__init__(-1, 0, (), b"", "", [], {}, f, f, f, f, f, f, {})
except ValueError:
    pass
for p in (never, failed):
    for call in (lambda: p.handle(b"SIP/2.0 200 OK\\r\\n\\r\\n", ("1.2.3.4", 5060)),
                 lambda: p.handle(b"BYE sip:a@b SIP/2.0\\r\\n\\r\\n", ("1.2.3.4", 5060)),
                 lambda: p.run(), lambda: p.accepts("1.2.3.4")):
        try:
            call()
        except RuntimeError:
            continue
        raise SystemExit("no RuntimeError")
"""


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_pump_not_initialised_raises_instead_of_crashing():
    """A Pump made by __new__ alone (or whose __init__ raised) had no stats dict, callbacks or receive buffers, and
    handle() dereferenced them: a segmentation fault. Every method now raises RuntimeError. (In a child process, so
    a crash is a failed test, not a lost run.)"""
    r = subprocess.run([sys.executable, "-c", _UNREADY], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


@pytest.mark.skipif(fastpath._c_in_dialog is None, reason="C extension not built")
def test_in_dialog_and_relay_answers_are_the_twins_item_for_item():
    """in_dialog() and relay_response() build their answers item by item (no Py_BuildValue format parsed at every
    message): each item of the same type and value as the Python twin's, the request's destination from its
    Request-URI or, when that names the screen itself, the configured next hop (that very object)."""
    from .test_sip_fuzz import RESPONSES, UAC
    hop = ("127.0.0.1", 5070, "UDP")
    reqs = REQUESTS[-3:] + [REQUESTS[-3].replace(b"ACK sip:0912345678@127.0.0.1:38930", b"ACK sip:127.0.0.1:5060")]
    for i, data in enumerate(reqs):
        c = fastpath._c_in_dialog(data, *UAC, OUR, hop)
        py = fastpath.py_in_dialog(data, *UAC, OUR, hop).astuple()
        assert c == py and [type(x) for x in c] == [type(x) for x in py] and type(c[5][1]) is int, data
        assert (c[5] is hop) == (i == 3)
    decided = 0
    for data in RESPONSES:
        c = fastpath._c_relay_response(data, OUR)
        if c is not None:
            decided += 1
            py = fastpath.py_relay_response(data, OUR)
            assert c == py and [type(x) for x in c] == [type(x) for x in py], data
    assert decided >= 3


@pytest.mark.skipif(fastpath._c_in_dialog is None, reason="C extension not built")
@pytest.mark.parametrize("sport", [0, 9, 10, 99, 100, 5080, 65535])
@pytest.mark.parametrize("mf", [b"1", b"2", b"10", b"11", b"100", b"101", b"255"])
def test_in_dialog_writes_numbers_as_python_does(sport, mf):
    """The rport, received and Max-Forwards values in_dialog() writes (its own decimal writer, not snprintf) are the
    Python twin's, at every digit count."""
    data = REQUESTS[-3].replace(b"Max-Forwards: 70", b"Max-Forwards: " + mf)
    assert b"Max-Forwards: " + mf + b"\r\n" in data
    for ip in ("127.0.0.1", "10.20.30.40", "::1"):
        c = fastpath._c_in_dialog(data, ip, sport, OUR, None)
        assert c is not None and c == fastpath.py_in_dialog(data, ip, sport, OUR, None).astuple()
        assert b";rport=%d" % sport in c[2] and b"Max-Forwards: %d\r\n" % (int(mf) - 1) in c[2]
