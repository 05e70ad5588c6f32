"""Short-code MO over SMPP (engine/smpp_proxy/mo.py, routing.py): a message the pipeline takes as a
5656 command is answered and confirmed as one, whatever form its destination is written in; and
its confirmation reaches the SMSC even when the link's window is full (it waits for room, never
silently dropped)."""
import time

import pytest

from engine.lists import ListStore
from engine.smpp_proxy.accounts import DEFAULT_REPLIES
from engine.smpp_proxy.codec import pdu as P
from tests.test_smpp_mo_concat import answers, confirmations, deliver, mo, proxy, verdicts  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import pipe, wait  # noqa: F401 (pipe: fixture)


@pytest.mark.parametrize("dest", ["05656", "5656 ", "+5656"])
def test_a_command_to_the_short_code_written_otherwise_is_answered_and_confirmed_once(proxy, pipe, dest):
    h, buf = proxy()
    src = "84911000077"
    seq = deliver(h, mo(b"DK DNC", dst=dest, src=src, dc=0, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    time.sleep(0.3)
    assert answers(h) == {seq: [0]}                  # acknowledged, never ESME_RX_T_APPN (redelivered for ever)
    assert confirmations(h, src) == [DEFAULT_REPLIES["DNC_REGISTERED"].replace("{channel}", "tin nhan va cuoc goi")]
    assert ListStore(pipe.store.dir).load().in_dnc(84911000077, "S")
    [line] = verdicts(buf)
    assert [x["symbol"] for x in line["hits"]] == ["DNC_REGISTERED"]


def test_a_binary_message_to_the_short_code_is_answered_as_a_syntax_error(proxy, pipe):
    h, buf = proxy()
    src = "84911000078"
    seq = deliver(h, mo(b"\x01\x02DK DNC", src=src, dc=4, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    time.sleep(0.3)
    assert answers(h) == {seq: [0]}
    assert confirmations(h, src) == [DEFAULT_REPLIES["SHORTCODE_SYNTAX_ERROR"]]
    [line] = verdicts(buf)
    assert [x["symbol"] for x in line["hits"]] == ["SHORTCODE_SYNTAX_ERROR"]


def test_confirmations_wait_for_room_upstream_instead_of_being_dropped(proxy, pipe):
    """A slow SMSC (answers 1 s late) and a window of 5 towards it: 25 DNC registrations in a burst
    each get their confirmation, sent as the window frees."""
    h, buf = proxy(smsc_window=5)
    h.sim.answer_delay = 1.0
    n = 25
    for i in range(n):
        deliver(h, mo(b"DK DNC", src=f"8491200{i:04d}", dc=0, esm_class=0))
    assert wait(lambda: len(h.sim.mo_responses) == n)
    assert wait(lambda: len(h.sim.submits()) == n, 15), len(h.sim.submits())
    assert sorted(p.destination_addr for p in h.sim.submits()) == [f"8491200{i:04d}" for i in range(n)]
    assert wait(lambda: h.proxy.stats["shortcode_replies_sent"] == n, 5)
    assert not h.proxy.stats["shortcode_replies_dropped"] and not h.proxy.stats["shortcode_replies_failed"]


def test_a_confirmation_answered_late_is_not_sent_again(proxy, pipe):
    """The SMSC answers the reply after the response timeout: it may well be delivered, so it is not
    sent a second time (a second SMS to the subscriber); the late answer is counted as late."""
    h, buf = proxy(smsc_response_timeout=0.5)
    h.sim.answer_delay = 1.0
    src = "84911000099"
    deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: h.proxy.stats["shortcode_replies_late"] == 1, 5)
    time.sleep(0.5)
    st = h.proxy.stats
    assert len(confirmations(h, src)) == 1
    assert st["shortcode_replies_unanswered"] == 1 and not st["shortcode_replies_failed"]


def _command(h, src, text):
    n = len(confirmations(h, src))
    deliver(h, mo(text, src=src, dc=0, esm_class=0))
    assert wait(lambda: len(confirmations(h, src)) > n)
    return confirmations(h, src)[-1]


def test_huy_dnc_says_what_it_removed_and_that_a_number_not_on_the_list_was_not_changed(proxy, pipe):
    """A HUY DNC from a number not on the list (for the channel asked) was confirmed as a cancellation and
    logged and counted as one (DNC_CANCELLED): the subscriber is told it was not on the list, nothing changed;
    one on S only that sends HUY DNC (both) is told S was removed, and the log says S."""
    h, buf = proxy()
    nowhere, s_only, both = "84911000101", "84911000102", "84911000103"
    # a registration names its channel too (it said only "registered", whatever was asked)
    assert _command(h, s_only, b"DK DNC S") == \
        "Ban da dang ky thanh cong danh sach khong nhan quang cao (DNC) cho tin nhan."
    assert _command(h, both, b"DK DNC") == \
        "Ban da dang ky thanh cong danh sach khong nhan quang cao (DNC) cho tin nhan va cuoc goi."
    assert _command(h, nowhere, b"HUY DNC") == \
        "So cua ban khong co trong danh sach khong nhan quang cao (DNC) cho tin nhan va cuoc goi, khong co thay doi."
    assert _command(h, s_only, b"HUY DNC") == "Ban da huy dang ky danh sach khong nhan quang cao (DNC) cho tin nhan."
    assert _command(h, both, b"HUY DNC V") == "Ban da huy dang ky danh sach khong nhan quang cao (DNC) cho cuoc goi."
    assert _command(h, both, b"HUY DNC V") == \
        "So cua ban khong co trong danh sach khong nhan quang cao (DNC) cho cuoc goi, khong co thay doi."
    assert not pipe.lists.in_dnc(int(s_only), "S") and pipe.lists.in_dnc(int(both), "S")
    hits = [(r["sender"], r["hits"][0]["symbol"], r["hits"][0]["detail"]) for r in verdicts(buf, "5656")
            if r["hits"][0]["symbol"] != "DNC_REGISTERED"]
    assert hits == [
        (nowhere, "DNC_NOT_REGISTERED", "nothing changed: +84911000101 not on DNC SV"),
        (s_only, "DNC_CANCELLED", "+84911000102 not on DNC V; removed from DNC S"),
        (both, "DNC_CANCELLED", "+84911000103 removed from DNC V"),
        (both, "DNC_NOT_REGISTERED", "nothing changed: +84911000103 not on DNC V")]
    # the journal has every command in the order it was confirmed (a no-op line changes nothing when replayed)
    on_disk = ListStore(pipe.store.dir).load()
    assert [on_disk.in_dnc(int(x), c) for x in (nowhere, s_only, both) for c in "SV"] == \
        [False, False, False, False, True, False]


def test_a_no_op_huy_dnc_in_a_check_replay_is_not_a_cancellation(pipe):
    """The same through Pipeline.judge (check --jsonl replays, demo)."""
    from datetime import datetime, timezone
    from engine.verdict import Message
    t = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    m = lambda text: Message(sender="0911000104", recipient="5656", text=text, time=t, direction="mo")
    assert pipe.judge(m("HUY DNC S")).symbols == ["DNC_NOT_REGISTERED"]
    assert pipe.judge(m("DK DNC V")).symbols == ["DNC_REGISTERED"]
    v = pipe.judge(m("HUY DNC"))
    assert v.symbols == ["DNC_CANCELLED"] and v.hits[0].detail == "+84911000104 not on DNC S; removed from DNC V"


def test_a_reply_longer_than_short_message_holds_reaches_the_subscriber_whole(proxy, pipe):
    """An operator's Vietnamese reply with diacritics (UCS-2) of 150 characters is 300 octets: it was cut to
    short_message's 254 (SMPP 3.4 §5.2.21), the subscriber got 127 characters ending mid-sentence. It goes in
    message_payload (§5.3.2.32) whole under `[shortcode] long_replies = "payload"` (parts by default:
    test_smpp_shortcode_reply_parts.py); a reply that fits stays in short_message."""
    reply = ("Quý khách đã đăng ký thành công dịch vụ chặn tin nhắn quảng cáo (DNC) cho {channel}. Để hủy, "
             "soạn HUY DNC gửi 5656. Chi tiết liên hệ 18001091 (miễn phí).")
    h, _ = proxy(shortcode_replies={**DEFAULT_REPLIES, "DNC_REGISTERED": reply}, shortcode_long_replies="payload")
    src = "84911000079"
    deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: confirmations(h, src))
    whole = reply.replace("{channel}", "tin nhan va cuoc goi")
    assert len(whole.encode("utf-16-be")) > 254
    assert confirmations(h, src) == [whole]
    [mt] = [p for p in h.sim.submits() if p.destination_addr == src]
    assert mt.short_message == b"" and mt.data_coding == 8
    cancelled = DEFAULT_REPLIES["DNC_CANCELLED"].replace("{channel}", "tin nhan va cuoc goi")
    assert _command(h, src, b"HUY DNC") == cancelled
    assert [p.short_message != b"" for p in h.sim.submits() if p.destination_addr == src] == [False, True]


@pytest.mark.parametrize("src, ton", [("", 1), ("VCB", 5)])
def test_a_command_from_no_reachable_address_is_carried_out_unconfirmed(proxy, pipe, src, ton):
    """Found by the 5656 intake walkthrough: a command whose MO came from an empty or an alphanumeric (TON 5) address
    had its confirmation sent there, which no SMS reaches and an SMSC refuses (a warning in the log each time). It
    is acknowledged and judged as before, its reply counted `shortcode_replies_unaddressable`, not sent."""
    h, buf = proxy()
    seq = deliver(h, P.replace(mo(b"S 0987000123 lua dao", src=src, dc=0, esm_class=0), source_addr_ton=ton))
    assert wait(lambda: h.proxy.stats["shortcode_replies_unaddressable"] == 1)
    time.sleep(0.3)
    assert answers(h) == {seq: [0]}
    assert h.sim.submits() == []
    assert len(verdicts(buf)) == 1
