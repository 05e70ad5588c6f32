"""A SIP MESSAGE through the screen is judged as an SMS (engine/sip_screen/messaging.py): the one pipeline, one verdict
line (the verdict log's SMS line), drop answered as an INVITE's rejection and not forwarded, tag forwarded with the tag
header, a retransmission answered from the transaction memory without a second judging, a 3GPP body judged on its
decoded text and TP-DA, a malformed one answered 400 with its reason and a refusal line, MESSAGE in a made-up dialog
judged all the same, and sip.toml's judge_messages = false relaying them as before. In process (offline_screen)."""
import io
import json
import shutil

import pytest

from engine.app import build
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.fastpath import _c_in_dialog, FULL_PARSE, in_dialog, py_in_dialog
from engine.verdictlog import VerdictLog

from .conftest import CONFIG
from .sip_helpers import UAC, offline_screen, sent
from .test_sip_sms3gpp import SUBMIT_UCS2, rp_mo

TEXT_RULES = '''# Test-only rules: drop one text, tag another.
[[rule]]
symbol = "TEST_SPAM_TEXT"
description = "test fixture"
applies_to = ["sms-mt"]
action = "drop"
score = 15.0
sip_code = 608
[rule.when]
text_regex = '(?i)win big'
[[rule.examples.hit]]
text = "WIN BIG now"
[[rule.examples.miss]]
text = "see you at noon"

[[rule]]
symbol = "TEST_PROMO_TEXT"
description = "test fixture"
applies_to = ["sms-mt"]
action = "tag"
score = 3.0
[rule.when]
text_regex = '(?i)promo'
[[rule.examples.hit]]
text = "promo today"
[[rule.examples.miss]]
text = "see you at noon"
'''


def message(body=b"see you at noon", ctype="text/plain;charset=UTF-8", frm="0901234567", to="0912345678",
            call_id="m1@127.0.0.1", branch="z9hG4bK-m1", extra=(), to_tag="") -> bytes:
    lines = [f"MESSAGE sip:{to}@127.0.0.1 SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch={branch};rport",
             "Max-Forwards: 70", f"From: <sip:{frm}@127.0.0.1>;tag=a1",
             f"To: <sip:{to}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""), f"Call-ID: {call_id}",
             "CSeq: 1 MESSAGE", *extra]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("msg")
    cfg = tmp / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "rules" / "90-test.toml").write_text(TEXT_RULES)
    return build(cfg, tmp / "data", with_model=False, persist=False)


@pytest.fixture
def screen(pipe):
    def make(**settings):
        out = io.StringIO()
        scr = offline_screen(pipe, VerdictLog(out), **settings)
        scr.lines = lambda: [json.loads(x) for x in out.getvalue().splitlines()]
        return scr
    return make


def test_spam_message_is_dropped_with_one_line_and_its_retransmission_answered_again(screen):
    scr = screen()
    m = message(b"WIN BIG now, reply YES")
    scr.on_datagram(m, UAC)
    out = sent(scr)
    assert [(r.status, a) for r, a in out] == [(608, UAC)]            # answered, nothing forwarded
    assert "TEST_SPAM_TEXT" in out[0][0].get("reason")
    scr.on_datagram(m, UAC)                                            # a retransmission: the same branch
    assert [r.status for r, _ in sent(scr)] == [608]
    lines = scr.lines()
    assert len(lines) == 1, lines
    ln = lines[0]
    assert (ln["kind"], ln["pdu"], ln["action"], ln["sender"], ln["recipient"]) == \
        ("sms", "SIP MESSAGE text", "drop", "0901234567", "0912345678")
    assert [h["symbol"] for h in ln["hits"]] == ["TEST_SPAM_TEXT"]
    assert scr.stats["messages_judged"] == 1 and scr.stats["messages_rejected"] == 1
    assert scr.stats["messages_replayed"] == 1 and scr.stats["rejected"] == 0      # (no call counted)


def test_clean_message_is_forwarded_and_a_tagged_one_carries_the_tag_header(screen):
    scr = screen()
    scr.on_datagram(message(), UAC)
    scr.on_datagram(message(b"promo today only", call_id="m2@x", branch="z9hG4bK-m2"), UAC)
    out = sent(scr)
    assert [(r.method, a) for r, a in out] == [("MESSAGE", ("127.0.0.1", 5070))] * 2
    assert out[0][0].get("x-spam-score") is None
    assert "TEST_PROMO_TEXT" in out[1][0].get("x-spam-score")
    assert [ln["action"] for ln in scr.lines()] == ["allow", "tag"]
    assert out[0][0].body == b"see you at noon"


def test_3gpp_body_is_judged_on_its_tpdu_text_and_destination(screen):
    scr = screen()
    body = rp_mo(SUBMIT_UCS2)
    scr.on_datagram(message(body, "application/vnd.3gpp.sms", to="+84980000001"), UAC)
    out = sent(scr)
    assert [r.method for r, _ in out] == ["MESSAGE"] and out[0][0].body == body     # relayed byte for byte
    (ln,) = scr.lines()
    assert (ln["pdu"], ln["recipient"], ln["action"]) == ("SIP MESSAGE SMS-SUBMIT", "0912345678", "allow")
    # GSM 7-bit "WIN BIG now" is 11 septets: packed with the SMPP codec's packer
    from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
    tpdu = bytes.fromhex("0100" "0aa19021436587" "0000") + bytes([11]) + gsm_pack(gsm_encode("WIN BIG now"))
    scr.on_datagram(message(rp_mo(tpdu), "application/vnd.3gpp.sms", call_id="m3@x", branch="z9hG4bK-m3"), UAC)
    assert [r.status for r, _ in sent(scr)] == [608]
    assert scr.lines()[-1]["action"] == "drop"


def test_malformed_3gpp_body_is_answered_400_with_its_reason_and_logged_once(screen):
    scr = screen()
    m = message(bytes.fromhex("002a00"), "application/vnd.3gpp.sms")
    scr.on_datagram(m, UAC)
    scr.on_datagram(m, UAC)
    out = sent(scr)
    assert [r.status for r, _ in out] == [400, 400]
    assert "RP-Destination Address cut short" in out[0][0].reason
    (ln,) = scr.lines()
    assert (ln["action"], ln["status"], ln["pdu"]) == ("refuse", 400, "SIP MESSAGE")
    assert "cut short" in ln["reason"]


def test_no_text_bodies_are_relayed_unjudged_and_counted(screen):
    scr = screen()
    scr.on_datagram(message(b"<isComposing/>", "application/im-iscomposing+xml"), UAC)
    scr.on_datagram(message(bytes.fromhex("022a"), "application/vnd.3gpp.sms", call_id="m4@x"), UAC)   # RP-ACK
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE", "MESSAGE"]
    assert scr.stats["messages_unjudged"] == 2 and scr.stats["messages_judged"] == 0
    assert scr.lines() == []


def test_sender_is_the_asserted_identity_from_a_trusted_peer_only(screen):
    pai = ["P-Asserted-Identity: <tel:+84987000123>"]
    scr = screen()
    scr.on_datagram(message(extra=pai), UAC)
    scr2 = screen(trusted_identity_networks=["10.0.0.0/8"])
    scr2.on_datagram(message(extra=pai, call_id="m5@x"), UAC)
    assert [ln["sender"] for ln in scr.lines() + scr2.lines()] == ["+84987000123", "0901234567"]


def test_a_made_up_to_tag_does_not_carry_a_message_past_the_screen(screen):
    m = message(b"WIN BIG", to_tag="made-up")
    assert py_in_dialog(m, *UAC) is FULL_PARSE and in_dialog(m, *UAC) is FULL_PARSE
    if _c_in_dialog is not None:                                        # the C fast path (and the pump) undecided
        assert _c_in_dialog(m, *UAC, (), None) is None
        assert _c_in_dialog(m.replace(b"MESSAGE", b"INFO"), *UAC, (), None) is not None    # (the same, an INFO: taken)
    scr = screen()
    scr.on_datagram(m, UAC)
    assert [r.status for r, _ in sent(scr)] == [608]


def test_judge_messages_off_relays_as_before(screen):
    scr = screen(judge_messages=False)
    scr.on_datagram(message(b"WIN BIG"), UAC)
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE"]
    assert scr.stats["messages_judged"] == 0


def test_sip_toml_switch(tmp_path):
    from engine.sip_screen.settings import load_sip_settings
    assert load_sip_settings(CONFIG).judge_messages is True
    (tmp_path / "sip.toml").write_text("[sip]\njudge_messages = false\n")
    assert load_sip_settings(tmp_path).judge_messages is False
    assert parse_datagram(message()).method == "MESSAGE"


def test_a_message_refused_before_judging_leaves_one_refusal_line(screen):
    """A MESSAGE the §16.3 checks answer (Max-Forwards 0: 483) is an SMS answered unjudged: one refusal line, none
    for its retransmission (it wrote none: only INVITEs' refusals were logged)."""
    scr = screen()
    m = message(b"WIN BIG").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    scr.on_datagram(m, UAC)
    scr.on_datagram(m, UAC)
    assert [r.status for r, _ in sent(scr)] == [483, 483]
    (ln,) = scr.lines()
    assert (ln["kind"], ln["action"], ln["status"], ln["sender"], ln["recipient"]) == \
        ("sms", "refuse", 483, "0901234567", "0912345678")


def test_the_cost_benchmark_judges_what_it_says():
    """benchmarks.sip_message_cost measures what its figures name: each MESSAGE judged once, the copies replayed."""
    from benchmarks.sip_message_cost import measure
    out = measure(300, 1)
    assert (out["judged"], out["replayed"], out["invites_screened"]) == (1000, 100, 500)
    assert set(out["cpu_us"]) == {"invite", "message_text", "message_3gpp", "message_unjudged",
                                  "message_retransmission"}


class _HeldVerdicts:
    """A shared state store whose verdicts settle only when the test says (as Redis confirming a commit)."""

    def __init__(self):
        self.waiting = []

    def begin(self):
        pass

    def settle(self, pipeline, v, done):
        self.waiting.append((v, done))


def test_with_a_shared_store_the_answer_waits_for_the_settled_verdict(screen, pipe):
    """A MESSAGE judged under a shared state store (Redis) is answered once its counts are settled; a copy that comes
    meanwhile is not judged again (its first answer is on its way), and the transaction has one line."""
    held = _HeldVerdicts()
    pipe.state.shared = held
    try:
        scr = screen()
        m = message(b"WIN BIG")
        scr.on_datagram(m, UAC)
        scr.on_datagram(m, UAC)
        assert sent(scr) == [] and len(held.waiting) == 1 and scr.lines() == []
        v, done = held.waiting.pop()
        done(v)
        assert [r.status for r, _ in sent(scr)] == [608]
        scr.on_datagram(m, UAC)                                        # settled: copies get its answer again
        assert [r.status for r, _ in sent(scr)] == [608]
        assert [ln["action"] for ln in scr.lines()] == ["drop"] and held.waiting == []
    finally:
        pipe.state.shared = None


def test_an_unregistered_brandname_is_judged_as_the_smpp_side_judges_it(screen):
    """An alphanumeric sender -- an SMS-DELIVER's TP-OA (type of number 5, as an SMPP source_addr_ton), or a From
    user -- is a sender ID: unregistered, it is dropped as a submit_sm from it is (SENDER_ID_UNREGISTERED)."""
    from engine.smpp_proxy.codec.text import gsm_encode, gsm_pack
    from .test_sip_sms3gpp import rp_mt
    name, text = gsm_pack(gsm_encode("FAKEBANK")), gsm_encode("Tai khoan bi khoa")
    tpdu = bytes([0x04, 2 * len(name), 0xD0]) + name + bytes.fromhex("0000" "62102221000000") + bytes([len(text)]) \
        + gsm_pack(text)
    scr = screen()
    scr.on_datagram(message(rp_mt(tpdu), "application/vnd.3gpp.sms"), UAC)
    scr.on_datagram(message(b"Tai khoan bi khoa", frm="FAKEBANK", call_id="m6@x", branch="z9hG4bK-m6"), UAC)
    out = sent(scr)
    assert [r.status for r, _ in out] == [603, 603] and all("SENDER_ID_UNREGISTERED" in r.get("reason")
                                                              for r, _ in out)
    assert [(ln["pdu"], ln["sender"], ln["action"]) for ln in scr.lines()] == \
        [("SIP MESSAGE SMS-DELIVER", "FAKEBANK", "drop"), ("SIP MESSAGE text", "FAKEBANK", "drop")]


def test_another_message_on_a_transaction_seen_is_judged_not_taken_for_its_retransmission(screen):
    """A retransmission is the same request again; one that reuses a transaction's top Via branch, Call-ID and CSeq
    number with another text, recipient or sender is another message and is judged (it was forwarded unjudged on the
    first one's decision: a clean MESSAGE opened the way for spam to any recipient for 32 s)."""
    scr = screen()
    scr.on_datagram(message(b"see you at noon"), UAC)
    scr.on_datagram(message(b"see you at noon"), UAC)                   # a real retransmission: forwarded again
    assert [r.method for r, _ in sent(scr)] == ["MESSAGE"] * 2
    scr.on_datagram(message(b"WIN BIG now"), UAC)                       # same transaction names, another text
    scr.on_datagram(message(b"WIN BIG now", to="0912999999"), UAC)     # ... and another recipient
    scr.on_datagram(message(b"Tai khoan bi khoa", frm="FAKEBANK"), UAC)    # ... and another sender
    assert [r.status for r, _ in sent(scr)] == [608, 608, 603]
    assert [(ln["action"], ln["recipient"]) for ln in scr.lines()] == \
        [("allow", "0912345678"), ("drop", "0912345678"), ("drop", "0912999999"), ("drop", "0912345678")]
    assert scr.stats["messages_judged"] == 4 and scr.stats["messages_replayed"] == 1


class _FullDisk(VerdictLog):
    def _fail(self, *a, **k):
        raise OSError(28, "No space left on device")

    write_sms = write_refusal = _fail


def test_a_verdict_log_that_cannot_be_written_changes_no_message_answer(pipe):
    """The log never decides a message's fate: a malformed MESSAGE is answered 400 and a spam one 608 with the
    verdict log failing (the 400's refusal line was written unguarded: the screen answered 500, 'internal error')."""
    scr = offline_screen(pipe, _FullDisk(io.StringIO()))
    scr.on_datagram(message(bytes.fromhex("002a00"), "application/vnd.3gpp.sms"), UAC)
    scr.on_datagram(message(b"WIN BIG", call_id="m7@x", branch="z9hG4bK-m7"), UAC)
    assert [r.status for r, _ in sent(scr)] == [400, 608]
    assert scr.stats["log_failed"] == 2 and scr.stats["internal_errors"] == 0
