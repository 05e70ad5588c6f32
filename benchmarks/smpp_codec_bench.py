"""CPU per submit_sm in the SMPP codec: decode + what the pipeline reads (addresses, text,
concatenation) + re-encoding a tagged PDU, for the full decoder (frozen dataclasses), the lean
view with raw edits, and smpplib's decoder as the same-run baseline.

    python -m benchmarks.smpp_codec_bench [--n 20000]

Each variant runs over the same PDUs (a 160-character GSM advert, a UCS2 Vietnamese text, a
concatenated GSM part with a UDH), interleaved round by round; the figure is the median of
rounds of process CPU time, in µs per submit_sm.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def sample_pdus() -> list[bytes]:
    from engine.smpp_proxy.codec import encode
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.codec.text import encode_text
    dc, gsm = encode_text("[QC] Uu dai 50% tai cua hang ABC, mua 1 tang 1 den het ngay 30/11. Chi tiet: "
                          "http://shopabc.vn/km Tu choi: TC gui 5656")
    vi = "Khuyến mãi lớn nhất năm, nhắn tin ngay để nhận quà tặng hấp dẫn".encode("utf-16-be")
    return [encode(p) for p in (
        P.SubmitSm(sequence_number=1, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1, dest_addr_npi=1,
                   destination_addr="84912000001", registered_delivery=1, data_coding=dc, short_message=gsm),
        P.SubmitSm(sequence_number=2, source_addr_ton=1, source_addr_npi=1, source_addr="0912345678",
                   destination_addr="84912000002", data_coding=8, short_message=vi),
        P.SubmitSm(sequence_number=3, source_addr_ton=5, source_addr="SHOPABC", destination_addr="84912000003",
                   esm_class=0x40, short_message=bytes([5, 0, 3, 7, 2, 1]) + gsm[:148]))]


def variants():
    from engine.smpp_proxy.codec import SmppConnection, Tlv, concat_info, encode, pdu_text
    from engine.smpp_proxy.codec import pdu as P
    from engine.smpp_proxy.codec.lean import append_tlv, with_sequence
    tag = b"5;AD_TEST"
    full, lean = SmppConnection(), SmppConnection(lean=True)

    def full_read(raw):
        full.receive_data(raw)
        p = full.next_event()
        return p, pdu_text(p), concat_info(p.esm_class, p.short_message, p.tlvs), p.source_addr, p.destination_addr

    def full_tagged(raw):
        p = full_read(raw)[0]
        return encode(P.replace(p, sequence_number=9, tlvs=p.tlvs + (Tlv(0x1401, tag),)))

    def lean_read(raw):
        lean.receive_data(raw)
        v = lean.next_event()
        return v, v.text(), v.concat, v.source_addr, v.destination_addr

    def lean_tagged(raw):
        v = lean_read(raw)[0]
        return append_tlv(with_sequence(v.raw, 9), 0x1401, tag)

    out = {"full_decode_read": full_read, "full_decode_read_tag_reencode": full_tagged,
           "lean_view_read": lean_read, "lean_view_read_tag_raw": lean_tagged}
    try:
        import smpplib.smpp

        class _Client:                     # smpplib numbers new PDUs through its client
            @staticmethod
            def next_sequence():
                return 1

        out["smpplib_parse_pdu"] = lambda raw: smpplib.smpp.parse_pdu(raw, client=_Client)
    except ImportError:
        pass
    return out


def run(n: int = 20000, rounds: int = 7) -> dict:
    raws = sample_pdus()
    fs = variants()
    per = {k: [] for k in fs}
    reps = max(1, n // len(raws))       # (each sample PDU at least once: an --n below their number divided by 0)
    for _ in range(rounds):
        for name, f in fs.items():
            t0 = time.process_time()
            for _ in range(reps):
                for r in raws:
                    f(r)
            per[name].append((time.process_time() - t0) / (reps * len(raws)) * 1e6)
    return {k: round(statistics.median(v), 2) for k, v in per.items()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.smpp_codec_bench",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))
    from .util import positive
    ap.add_argument("--n", type=positive(), default=20000, help="submit_sm decoded per variant and round")
    print(json.dumps(run(ap.parse_args().n), indent=1))
