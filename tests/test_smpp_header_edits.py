"""The header edits of the forward path (lean.with_sequence, lean.as_request) in C (_leanview.c header_edits, used
when built) and in Python (lean._with_sequence, lean._as_request, the reference): the same bytes for every PDU and
sequence_number, and for anything else (short bytes, a bytearray, a number past 32 bits, negative, not an int) the
same result or the same error."""
import random

import pytest

from engine.smpp_proxy.codec import lean

pytestmark = pytest.mark.skipif(lean.with_sequence is lean._with_sequence, reason="_leanview is not built")


class Seq(int):
    pass


def _outcome(f, raw, seq):
    try:
        return "ok", type(f(raw, seq)), f(raw, seq)
    except Exception as e:              # the same error, worded the same
        return "error", type(e), str(e)


def test_the_compiled_edits_give_the_python_bytes():
    rnd = random.Random(5)
    seqs = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, -1, -(1 << 40), 1 << 70, True, Seq(9), 3.0, None]
    for n in list(range(0, 40)) + [64, 255, 4096]:
        raw = bytes(rnd.randrange(256) for _ in range(n))
        for seq in seqs + [rnd.randrange(1 << 32) for _ in range(5)]:
            for r in (raw, bytearray(raw), memoryview(raw)):
                assert _outcome(lean.with_sequence, r, seq) == _outcome(lean._with_sequence, r, seq), (n, seq)
                assert _outcome(lean.as_request, r, seq) == _outcome(lean._as_request, r, seq), (n, seq)


def test_the_edits_change_the_header_octets_only():
    raw = bytes(range(1, 41))
    out = lean.with_sequence(raw, 0x0A0B0C0D)
    assert out[:12] == raw[:12] and out[12:16] == b"\x0a\x0b\x0c\x0d" and out[16:] == raw[16:]
    req = lean.as_request(raw, 7)
    assert req[:8] == raw[:8] and req[8:12] == bytes(4) and req[12:16] == (7).to_bytes(4, "big") and req[16:] == raw[16:]
    assert type(out) is bytes and out is not raw
