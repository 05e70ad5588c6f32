"""The C pump (engine/sip_screen/_sipfast.c) against the Python paths on the fuzz corpus (test_sip_fuzz.py's seeds
and mutations): the same counts, the same datagrams to the same places, nothing sent outside the permitted networks,
and its branch hash is hashlib's BLAKE2b."""
import random

import pytest

from engine.app import build
from engine.sip_screen.transport import Pump, make_pump

from .sip_helpers import UAC, invite, offline_screen
from .test_sip_fuzz import REQUESTS, RESPONSES, SEEDS, mutate, pipe  # noqa: F401 (pipe: fixture)


PUMP_COUNTED = ("responses", "requests", "fast_path", "dropped", "not_permitted", "forward_failed", "internal_errors",
                "final_wrong_origin")


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_pump_agrees_with_python_paths(tmp_path):
    """The pump (as `serve` runs it, sends captured instead of sent) sends exactly the bytes the
    Python fast path sends (which agrees with the full parse: check_screen), to the same places,
    counts the same events and final responses, marks the same calls answered (a 200 from where the
    INVITE went: the pump hands on the source); and it
    does relay a plain call's responses and in-dialog requests itself, without the Python path.
    (Each screen has its own pipeline: a verdict depends on the calls seen before.)"""
    rnd = random.Random(16)
    pscr, scr = offline_screen(build(data_dir=tmp_path / "p")), offline_screen(build(data_dir=tmp_path / "s"))
    pump = make_pump(pscr, -1, pscr.udp.sendto)
    handed = []
    real = pscr.on_datagram
    pscr.on_datagram = lambda d, a: (handed.append(d), real(d, a))
    seeds = SEEDS + RESPONSES + REQUESTS
    plain = [s for s in dict.fromkeys(SEEDS + REQUESTS) if s.startswith((
                 b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtf0123456789abcdef0123;rport\r\n"
                 b"Via: SIP/2.0/UDP 127.0.0.1:5080", b"SIP/2.0 180",
                                              b"ACK sip:0912345678@127.0.0.1:38930", b"BYE sip:0901234567@127.0.0.1:5080"))]
    assert len(plain) == 4
    for data in plain:
        pump.handle(data, UAC)
    assert handed == [] and len(pscr.udp.out) == len(plain)
    inputs = [(s, UAC) for s in seeds] + [
        (mutate(rnd.choice(seeds if i % 2 else plain), rnd, rnd.randrange(1, 4)),
         rnd.choice([UAC, UAC, ("10.0.0.3", 5062), ("::1", 5080)]))
        for i in range(8000)]
    # calls and their 200s, from the next hop's address (127.0.0.1) or elsewhere: the same answered
    rnd2 = random.Random(3261)
    for i in range(60):
        inputs += [(invite(caller=f"09012{i:05d}", call_id=f"a{i}"), UAC),
                   (plain[0].replace(b"Call-ID: c1", b"Call-ID: a%d" % i),
                    rnd2.choice([UAC, ("10.0.0.3", 5062), ("::1", 5080)]))]
    for data in plain:                                           # the same history on the Python side
        scr.on_datagram(data, UAC)
    for data, src in inputs:
        pscr.udp.out.clear()
        scr.udp.out.clear()
        pump.handle(data, src)                                   # never raises
        scr.on_datagram(data, src)
        assert pscr.udp.out == scr.udp.out, (data, src)
        assert {k: pscr.stats[k] for k in PUMP_COUNTED} == {k: scr.stats[k] for k in PUMP_COUNTED}, (data, src)
    assert pscr.final_codes == scr.final_codes
    marks = lambda scr: {k: (v[0], v[1] is None, v[2], v[3]) for k, (_, v) in scr.answered.d.items()}  # noqa: E731
    assert marks(pscr) == marks(scr)
    assert pscr.stats["internal_errors"] == 0
    assert len(inputs) - len(handed) > 1000, len(handed)         # the pump decided many itself


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_pump_sends_outside_the_permitted_networks_never(pipe):
    """A next hop outside the permitted networks goes to the Python path, which refuses it."""
    scr = offline_screen(pipe)
    scr.ranges = [(4, 0x0A000000, 0x0AFFFFFF)]                   # 10/8 only: 127.0.0.1 is not permitted
    pump = make_pump(scr, -1, scr.udp.sendto)
    pump.handle(RESPONSES[-2], UAC)
    assert scr.udp.out == [] and scr.stats["not_permitted"] == 1


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_pump_branch_hash_is_hashlib_blake2b():
    """The pump's branch hash (C BLAKE2b) is hashlib's, across block boundaries and sizes."""
    import hashlib

    from engine.sip_screen._sipfast import blake2b_hex
    rnd = random.Random(7693)
    for n in [*range(0, 260), 1000, 4096]:
        data = bytes(rnd.randrange(256) for _ in range(n))
        for size in (10, 1, 64):
            assert blake2b_hex(data, size) == hashlib.blake2b(data, digest_size=size).hexdigest(), (n, size)
