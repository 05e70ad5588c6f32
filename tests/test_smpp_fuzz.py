"""SMPP codec properties (Hypothesis) and the bounded mutation fuzzer CI runs (tests/fuzz/smpp_fuzz.py).
SMPP_FUZZ_SECONDS sets the fuzzer's budget (default 8, at most 20 in CI)."""
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp_proxy.codec import Tlv, decode, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from tests.fuzz import smpp_fuzz

CORPUS = smpp_fuzz.seed_corpus()


def _cstring(max_octets):
    return st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=max_octets - 1)


_time = st.one_of(st.just(""), st.builds(lambda d, p: d + p, st.text(alphabet="0123456789", min_size=15, max_size=15),
                                         st.sampled_from("+-R")))
_udh = st.one_of(
    st.just(b""),
    st.builds(lambda ref, tot, k: bytes([5, 0, 3, ref, tot, min(k, tot)]), st.integers(0, 255), st.integers(1, 255),
              st.integers(1, 255)),
    st.builds(lambda p: bytes([6, 5, 4]) + p, st.binary(min_size=4, max_size=4)))
_vendor_tlvs = st.lists(st.builds(Tlv, st.integers(0x1400, 0x3FFF), st.binary(max_size=20)), max_size=3).map(tuple)


@st.composite
def any_pdu(draw):
    """Any SMPP 3.4 PDU with field values the spec allows (sizes, times, UDH when UDHI is set)."""
    cid = draw(st.sampled_from(sorted(P.CLASSES)))
    cls = P.CLASSES[cid]
    vals = {"sequence_number": draw(st.integers(1, 0x7FFFFFFF))}
    for name, kind, limit, _, is_time in P.PLANS[cid]:
        if kind == "c":
            vals[name] = draw(_time if is_time else _cstring(limit or 80))
        elif kind == "B":
            vals[name] = draw(st.integers(0, 255))
        elif kind == "sm":
            vals[name] = draw(st.binary(max_size=120))
        elif kind == "dests":
            vals[name] = tuple(draw(st.lists(st.one_of(
                st.builds(lambda t, n, a: (1, t, n, a), st.integers(0, 255), st.integers(0, 255), _cstring(21)),
                st.builds(lambda a: (2, a), _cstring(21))), min_size=1, max_size=4)))
        elif kind == "unsucc":
            vals[name] = tuple(draw(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), _cstring(21),
                                                       st.integers(0, 2**32 - 1)), max_size=3)))
    if "esm_class" in vals:
        udh = draw(_udh)
        vals["esm_class"] = (vals["esm_class"] & ~C.ESM_UDHI) | (C.ESM_UDHI if udh else 0)
        if udh and cid == C.DATA_SM:                          # data_sm's user data is message_payload
            vals["tlvs"] = (Tlv(C.TAG_MESSAGE_PAYLOAD, udh + b"x"),)
        elif udh:
            vals["short_message"] = udh + vals["short_message"][:100]
    if cid not in P.NO_TLVS:
        vals["tlvs"] = vals.get("tlvs", ()) + draw(_vendor_tlvs)
    return cls(**vals)


@given(any_pdu())
@settings(max_examples=300)
def test_decode_encode_round_trip_every_command(p):
    raw = encode(p)
    assert decode(raw) == p
    smpp_fuzz.check(raw)                       # whole == byte-at-a-time == chunked == lean, helpers total


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_bytes_give_pdus_or_protocol_errors_only(data):
    smpp_fuzz.check(data)


@given(st.binary(max_size=200))
@settings(max_examples=150)
def test_random_bodies_behind_a_sound_header(body):
    for cid in (C.SUBMIT_SM, C.DELIVER_SM, C.DATA_SM, C.SUBMIT_MULTI, C.BIND_TRANSCEIVER, C.SUBMIT_SM_RESP):
        smpp_fuzz.check((16 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big") + bytes(4) + b"\x00\x00\x00\x05"
                        + body)


@given(st.sampled_from(CORPUS), st.randoms(use_true_random=False))
@settings(max_examples=300)
def test_mutated_vectors(seed_pdu, rnd):
    smpp_fuzz.check(smpp_fuzz.mutate(rnd, seed_pdu, CORPUS))


def test_bounded_mutation_fuzz_run():
    seconds = min(float(os.environ.get("SMPP_FUZZ_SECONDS", "8")), 20.0)
    stats = smpp_fuzz.run(seconds=seconds, seed=20261130)
    # the mutator must reach past the framing: some mutants decode, some are refused
    assert stats["iterations"] > 0 and stats["pdus_decoded"] > 0 and stats["pdus_refused"] > 0


def test_fuzz_check_reports_a_helper_that_raises(monkeypatch):
    def broken(pdu):
        raise IndexError("bug")
    monkeypatch.setattr(smpp_fuzz, "pdu_urls", broken)
    with pytest.raises(AssertionError, match="IndexError"):
        smpp_fuzz.check(CORPUS[0 if CORPUS[0][7] == 4 else 2])


def test_fuzz_check_reports_a_lean_view_that_disagrees(monkeypatch):
    from engine.smpp_proxy.codec import connection
    real = connection.view_sm

    def lying(raw, cid, seq, status):
        v = real(raw, cid, seq, status)
        v.destination_addr = "x" + v.destination_addr
        return v
    monkeypatch.setattr(connection, "view_sm", lying)
    sub = next(d for d in CORPUS if d[4:8] == C.SUBMIT_SM.to_bytes(4, "big"))
    with pytest.raises(AssertionError, match="lean view differs"):
        smpp_fuzz.check(sub)


def test_mutate_is_deterministic_for_a_seed():
    a = [smpp_fuzz.mutate(random.Random(5), d, CORPUS) for d in CORPUS]
    b = [smpp_fuzz.mutate(random.Random(5), d, CORPUS) for d in CORPUS]
    assert a == b and a != CORPUS
