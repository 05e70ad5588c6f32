"""A bounded-time mutation fuzzer for the SMPP codec (no I/O, no network).

    python -m tests.fuzz.smpp_fuzz [--seconds 60] [--seed N]

Inputs are mutations of the golden vectors (tests/vectors/smpp) and of a few PDUs that reach
the tricky paths (UDH, SAR, message_payload, WAP push, submit_multi): bit flips, interesting
octets, inserted / deleted / duplicated runs, splices of two inputs, truncation; most get their
command_length patched so the mutation reaches the body instead of the framing check. Each
input must satisfy `check`:

- fed whole, one byte at a time and in random chunks, the connection yields the same events
  and errors, and nothing but PDUs and RemoteProtocolError (anything else is a bug);
- every decoded PDU re-encodes to bytes that decode to the same PDU;
- the lean view (lean=True) accepts and refuses exactly what the full decoder does;
- the text, URL and concatenation helpers return or raise RemoteProtocolError (a bad UDH)
  on whatever decoded, and the lean view's answers equal the full PDU's;
- every refusal has an answer (answer_for) that encodes.

A failure raises AssertionError naming the input in hex, so it can be pasted into a test.
Iterations are deterministic for a seed; how many run depends on the time budget.
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from engine.smpp_proxy.codec import NEED_DATA, RemoteProtocolError, SmppConnection, Tlv, encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.binary import pdu_urls
from engine.smpp_proxy.codec.lean import SmView
from engine.smpp_proxy.codec.text import READINGS, concat_info, pdu_reading
from engine.smpp_proxy.codec.udh import pdu_check_user_data, pdu_concat

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "smpp"
INTERESTING = (0x00, 0x01, 0x03, 0x05, 0x08, 0x0B, 0x1B, 0x40, 0x7F, 0x80, 0xC3, 0xF0, 0xFE, 0xFF)


def seed_corpus() -> list[bytes]:
    out = [p.read_bytes() for p in sorted(VECTORS.glob("*.bin"))]
    si = bytes.fromhex("0605040b8423f0" "250601ae" "02056a0045c60c03") + b"wap.example\x00\x01\x03Hi\x00\x01\x01"
    out += [encode(p) for p in (
        P.SubmitSm(sequence_number=1, source_addr="SHOP", destination_addr="84912000001", esm_class=0x40,
                   short_message=bytes.fromhex("050003070201") + b"\x1b<QC\x1b> Giam gia"),
        P.SubmitSm(sequence_number=2, source_addr="84901", destination_addr="84902", data_coding=4, esm_class=0x40,
                   short_message=si),
        P.SubmitSm(sequence_number=3, source_addr="a", destination_addr="b", short_message=b"",
                   tlvs=(Tlv(0x020C, b"\x00\x07"), Tlv(0x020E, b"\x02"), Tlv(0x020F, b"\x01"),
                         Tlv(0x0424, "Tiếng Việt".encode("utf-16-be")))),
        P.DeliverSm(sequence_number=4, source_addr="84912000001", destination_addr="5656", esm_class=0x40,
                    short_message=bytes.fromhex("f00003010201")),
        P.SubmitMulti(sequence_number=5, source_addr="x", dest_addresses=((1, 1, 1, "849"), (2, "list")),
                      short_message=b"hello"),
        P.DataSm(sequence_number=6, source_addr="a" * 30, destination_addr="b", data_coding=8,
                 tlvs=(Tlv(0x0424, "ok".encode("utf-16-be")),)),
        P.BindTransceiver(sequence_number=7, system_id="esme1", password="secret", interface_version=0x34),
        P.SubmitSmResp(sequence_number=8, message_id="abc"),
    )]
    return out


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.choice(INTERESTING)
        elif op == 2:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and b:
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[pos:pos] = b[j:j + rng.randint(1, 16)]
        elif op == 5:
            other = rng.choice(corpus)
            k = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[k:])
        elif op == 6 and len(b) > 16:
            del b[rng.randrange(16, len(b)):]
        elif op == 7 and len(b) >= 16:
            b[rng.randrange(16)] = rng.choice(INTERESTING)
    if len(b) >= 4 and rng.random() < 0.75:
        b[0:4] = len(b).to_bytes(4, "big")
    return bytes(b)


def _events(chunks, lean=False):
    c = SmppConnection(1 << 16, lean=lean)
    out = []
    for ch in chunks:
        c.receive_data(ch)
        while True:
            try:
                ev = c.next_event()
            except RemoteProtocolError as e:
                out.append(e)
                if e.fatal:
                    return out
                continue
            if ev is NEED_DATA:
                break
            out.append(ev)
    return out


def _outcome(f, *args):
    """What f(*args) returns, or the identity of the RemoteProtocolError it raises (nothing else may escape)."""
    try:
        return f(*args)
    except RemoteProtocolError as e:
        return _key(e)


def _key(ev):
    if isinstance(ev, RemoteProtocolError):
        return ("error", ev.status, ev.command_id, ev.sequence_number, ev.fatal)
    return ev.pdu() if isinstance(ev, SmView) else ev


def check(data: bytes, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(0)
    try:
        whole = _events([data])
        one = _events([data[i:i + 1] for i in range(len(data))])
        cuts = sorted(rng.sample(range(1, len(data)), min(3, len(data) - 1))) if len(data) > 1 else []
        chunked = _events([data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])])
        lean = _events([data], lean=True)
        want = [_key(e) for e in whole]
        assert [_key(e) for e in one] == want, "byte-at-a-time differs from whole"
        assert [_key(e) for e in chunked] == want, "chunked differs from whole"
        assert [_key(e) for e in lean] == want, "lean view differs from full decode"
        for ev in whole:
            if isinstance(ev, RemoteProtocolError):
                encode(P.answer_for(ev))
                continue
            assert P.decode(encode(ev)) == ev, "re-encoding changed the PDU"
            if hasattr(ev, "esm_class"):
                for reading in READINGS:
                    _outcome(pdu_reading, ev, reading)
                _outcome(pdu_urls, ev)
                _outcome(pdu_check_user_data, ev)
                _outcome(concat_info, ev.esm_class, getattr(ev, "short_message", b""), ev.tlvs)
        for full, view in zip(whole, lean):
            if isinstance(view, SmView):
                assert _outcome(lambda: view.text()) == _outcome(pdu_reading, full), "view text differs"
                assert _outcome(lambda: view.concat) == _outcome(pdu_concat, full), "view concat differs"
                assert _outcome(view.check_user_data) == _outcome(pdu_check_user_data, full), "view checks differ"
    except Exception as e:
        raise AssertionError(f"SMPP codec fuzz input {data.hex()}: {type(e).__name__}: {e}") from e


def run(seconds: float = 10.0, seed: int = 1, max_iterations: int = 10**9) -> dict:
    rng = random.Random(seed)
    corpus = seed_corpus()
    for d in corpus:
        check(d, rng)
    deadline = time.monotonic() + seconds
    n = decoded = refused = 0
    while n < max_iterations and time.monotonic() < deadline:
        d = mutate(rng, rng.choice(corpus), corpus)
        check(d, rng)
        n += 1
        evs = _events([d])
        decoded += sum(not isinstance(e, RemoteProtocolError) for e in evs)
        refused += sum(isinstance(e, RemoteProtocolError) for e in evs)
        if evs and not isinstance(evs[0], RemoteProtocolError) and len(corpus) < 512 and rng.random() < 0.05:
            corpus.append(d)               # a mutant that still decodes is a good parent
    return {"iterations": n, "pdus_decoded": decoded, "pdus_refused": refused, "corpus": len(corpus)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="SMPP codec mutation fuzzer")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    print(f"seed {a.seed}")
    print(run(a.seconds, a.seed))
