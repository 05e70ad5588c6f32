"""A part that comes after its message was judged (concat_timeout passed) is judged on the whole text known,
and never counted again: its message is one ad to its recipient, counted once when it was judged (README: a
multi-part ad is one message toward the advertiser's cap, not one per part)."""
import time
from datetime import datetime

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import raw_session, read_raw

SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
NOON = datetime.fromisoformat("2026-03-02T12:00:00+07:00")
TIMEOUT = 0.3


def _part(seq, ref, n, body, dst="84912777050"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, esm_class=0x40,
                             short_message=bytes([5, 0, 3, ref, 2, n]) + body))


def _ad(seq, dst="84912777050"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                             destination_addr=dst, data_coding=1, short_message=b"[QC] Uu dai. TC gui 5656"))


def test_a_late_part_does_not_count_its_ad_again(tmp_path):
    """Found by the Decree 91 probe: each late part was counted as one more ad, so two ads in two parts whose
    second parts came after concat_timeout counted four: the second ad's last part was refused
    (AD_FREQUENCY_CAP, "4 messages ... (limit 3)") after its first part had gone out, and the advertiser's
    third ad of the day was dropped."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    with ProxyHarness(pipe, clock=lambda: NOON, settings=SmppSettings(concat_timeout=TIMEOUT)) as h:
        s, _ = raw_session(h)
        for i, ref in enumerate((0x31, 0x32)):
            s.sendall(_part(10 + 2 * i, ref, 1, b"[QC] Uu dai cuoi tuan, giam gia. "))
            assert read_raw(s).command_status == 0          # judged alone at the timeout, forwarded
            time.sleep(TIMEOUT + 0.2)
            s.sendall(_part(11 + 2 * i, ref, 2, b"Tu choi: TC gui 5656"))
            assert read_raw(s).command_status == 0, f"ad {i + 1}: its late part was refused"
        s.sendall(_ad(20))
        assert read_raw(s).command_status == 0              # the third ad of the day
        s.sendall(_ad(21))
        assert read_raw(s).command_status != 0              # the fourth: AD_FREQUENCY_CAP
        assert len(h.sim.submits()) == 5


def _multi_part(seq, ref, n, body, dests):
    return encode(P.SubmitMulti(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC",
                                dest_addresses=tuple((1, 1, 1, x) for x in dests), data_coding=1, esm_class=0x40,
                                short_message=bytes([5, 0, 3, ref, 2, n]) + body))


def test_a_late_submit_multi_part_does_not_count_its_ad_again(tmp_path):
    """The same for a submit_multi's parts: its late part counted each destination once more."""
    d = tmp_path / "data"
    ListStore(d).import_csv("senders", SENDERS, "senders.csv")
    pipe = build(data_dir=d, with_model=False)
    dests = ["84912777061", "84912777062"]
    with ProxyHarness(pipe, clock=lambda: NOON, settings=SmppSettings(concat_timeout=TIMEOUT)) as h:
        s, _ = raw_session(h)
        for i, ref in enumerate((0x41, 0x42)):
            s.sendall(_multi_part(10 + 2 * i, ref, 1, b"[QC] Uu dai cuoi tuan, giam gia. ", dests))
            assert read_raw(s).command_status == 0
            time.sleep(TIMEOUT + 0.2)
            s.sendall(_multi_part(11 + 2 * i, ref, 2, b"Tu choi: TC gui 5656", dests))
            assert read_raw(s).command_status == 0, f"ad {i + 1}: its late part was refused"
        for seq, dst in ((20, dests[0]), (21, dests[1])):
            s.sendall(_ad(seq, dst))
            assert read_raw(s).command_status == 0          # the third ad of the day to each
        s.sendall(_ad(22, dests[0]))
        assert read_raw(s).command_status != 0              # the fourth: AD_FREQUENCY_CAP
