"""Which call an INVITE is (found by a SIP probe at stop 33): a redirect or a fork to another callee on the same
Call-ID and From tag is a call of its own, judged (it reused the first callee's verdict: a DNC number was called);
another INVITE on an answered call's Call-ID does not erase that call's duration (the short-call criterion saw
nothing); a P-Asserted-Identity with a sip and a tel identity is read by its number."""
from datetime import datetime, timedelta, timezone

from engine.app import build
from engine.lists import ListStore
from engine.numbers import sender_key
from engine.sip_screen.codec import make_response, parse_datagram
from tests.sip_helpers import UAC, UAS, offline_screen

AD = b"02439998888"          # a registered advertiser (QC)
DNC_V = b"0912000002"         # on the DNC list for calls


class _Lines:
    def __init__(self):
        self.calls = []

    def write_call(self, *a):
        self.calls.append(a)


def _screen(tmp_path, **kw):
    ListStore(tmp_path).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                              b"02439998888,Shop ABC,QC,,,\n")
    ListStore(tmp_path).import_csv("dnc", b"number,channel\n0912000002,V\n")
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    vlog = _Lines()
    scr = offline_screen(pipe, vlog, **kw)
    scr.clock = lambda: datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)        # 10:00 in Hanoi
    return scr, vlog, pipe


def _sent(scr):
    out = [(parse_datagram(d), a) for d, a in scr.udp.out]
    scr.udp.out.clear()
    return out


def _invite(callee, frm, call_id, branch, tag=None, extra=b""):
    return (b"INVITE sip:" + callee + b"@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch +
            b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:" + frm + b"@127.0.0.1>;tag=" + (tag or b"t" + call_id) +
            b"\r\nTo: <sip:" + callee + b"@127.0.0.1>\r\nCall-ID: " + call_id + b"\r\nCSeq: 1 INVITE\r\n"
            b"Contact: <sip:x@127.0.0.1:5080>\r\n" + extra + b"Content-Length: 0\r\n\r\n")


def test_another_callee_on_the_same_call_id_and_tag_is_judged(tmp_path):
    scr, vlog, _ = _screen(tmp_path)
    scr.on_datagram(_invite(b"0912999999", AD, b"fork1", b"z9hG4bK-b1"), UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"]
    scr.on_datagram(_invite(DNC_V, AD, b"fork1", b"z9hG4bK-b2"), UAC)
    (r, _), = _sent(scr)
    assert r.status == 608 and "AD_CALL_TO_DNC" in (r.get("reason") or "")
    scr.on_datagram(_invite(b"0912999999", AD, b"fork1", b"z9hG4bK-b1"), UAC)     # a retransmission: replayed
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"]
    assert scr.stats["screened"] == 2 and len(vlog.calls) == 2 and scr.stats["replayed"] == 1


def test_another_invite_on_an_answered_calls_call_id_keeps_its_duration(tmp_path):
    def call(extra_invite):
        d = tmp_path / ("x" if extra_invite else "c")
        scr, _, pipe = _screen(d, record_route=True)
        t = [datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)]
        scr.clock = lambda: t[0]
        scr.on_datagram(_invite(b"0912345678", b"0901234567", b"dur1", b"z9hG4bK-a"), UAC)
        (fwd, dest), = _sent(scr)
        assert dest == UAS
        scr.on_datagram(make_response(fwd, 200, None, to_tag="uas1").to_bytes(), UAS)
        assert [m.status for m, _ in _sent(scr)] == [200]
        if extra_invite:
            scr.on_datagram(_invite(b"0912345678", b"0901234567", b"dur1", b"z9hG4bK-o", tag=b"second"), UAC)
            _sent(scr)
        t[0] += timedelta(seconds=3)
        scr.on_datagram(b"BYE sip:0912345678@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;"
                        b"branch=z9hG4bK-bye;rport\r\nMax-Forwards: 70\r\nRoute: <sip:127.0.0.1:5060;lr>\r\n"
                        b"From: <sip:0901234567@127.0.0.1>;tag=tdur1\r\nTo: <sip:0912345678@127.0.0.1>;tag=uas1\r\n"
                        b"Call-ID: dur1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n", UAC)
        _sent(scr)
        return [dur for _, dur in pipe.state.calls.recent(sender_key("0901234567"))]
    assert call(False) == [3.0] and call(True) == [3.0]


def test_an_asserted_tel_identity_beside_a_sip_one_is_the_caller(tmp_path):
    for i, pai in enumerate((b"P-Asserted-Identity: <sip:shopabc@127.0.0.1>, <tel:+842439998888>\r\n",
                             b"P-Asserted-Identity: <sip:shopabc@127.0.0.1>\r\nP-Asserted-Identity: <tel:+842439998888>\r\n")):
        scr, vlog, _ = _screen(tmp_path / str(i))
        scr.on_datagram(_invite(b"0912999999", AD, b"a1", b"z9hG4bK-1"), UAC)
        _sent(scr)
        scr.on_datagram(_invite(b"0912999999", b"shopabc", b"a2", b"z9hG4bK-2", extra=pai), UAC)
        (m, _), = _sent(scr)
        assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in (m.get("reason") or ""), (m.status, m.get("reason"))
        assert vlog.calls[-1][2] == "+842439998888"


def test_a_local_number_with_a_global_phone_context_is_the_global_number(tmp_path):
    """RFC 3966 §5.1.5: tel:2439998888;phone-context=+84 is +84 24 3999 8888 (it was read as 2439998888: the
    brand's second ad call passed its cap, a DNC callee written so was called)."""
    from engine.sip_screen.grammar import parse_uri
    assert parse_uri("tel:2439998888;phone-context=+84").user == "+842439998888"
    assert parse_uri("sip:2000002;phone-context=+84-91@127.0.0.1;user=phone").user == "+84912000002"
    assert parse_uri("tel:5656;phone-context=example.com").user == "5656"          # a domain: no prefix
    assert parse_uri("tel:+842439998888;phone-context=+84").user == "+842439998888"
    scr, vlog, _ = _screen(tmp_path)
    scr.on_datagram(_invite(b"2000002;phone-context=+8491", AD, b"pc1", b"z9hG4bK-pc"), UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and vlog.calls[-1][3] == "+84912000002"


def test_the_display_prefix_keeps_the_from_header_well_formed(tmp_path):
    """Found by a SIP probe: a display name ending in an escaped quote ("\\"VIP\\"") lost its closing quote, and one
    holding '<' ("Shop <ABC>") had its URI taken from inside the quotes: the forwarded From did not parse."""
    from engine.sip_screen.grammar import parse_name_addr
    for i, disp in enumerate((b'"\\""', b'"\\"VIP\\""', b'"Shop <ABC>"', b"Shop")):
        scr, _, _ = _screen(tmp_path / str(i), display_prefix="[SPAM?] ")
        for n in range(12):               # the 11th call in a minute from one caller is tagged (CALL_VOLUME_ANOMALY)
            scr.on_datagram(_invite(b"09123450%02d" % n, b"0901234599", b"dp%d" % n, b"z9hG4bK-dp%d" % n)
                            .replace(b"From: <sip:", b"From: " + disp + b" <sip:"), UAC)
            out = _sent(scr)
        fwd = out[-1][0]
        assert fwd.method == "INVITE" and "CALL_VOLUME_ANOMALY" in (fwd.get(scr.s.tag_header) or "")
        na = parse_name_addr(fwd.get("from"))
        assert na.uri == "sip:0901234599@127.0.0.1" and na.params.get("tag") == "tdp11"
        inner = disp[1:-1] if disp.startswith(b'"') else disp          # the display name inside its quotes
        assert na.display == "[SPAM?] " + inner.decode()


def test_an_ad_call_the_screen_cannot_forward_is_not_counted(tmp_path):
    """Found by a SIP probe at stop 33: an ad call answered 503 by the screen itself (its destination not permitted)
    had been counted toward the advertiser's one call a day: the advertiser's retry, and every later call that day
    to that callee, was refused AD_CALL_FREQUENCY_CAP for a call that never left."""
    scr, vlog, _ = _screen(tmp_path)
    from engine.sip_screen.settings import permitted_ranges
    scr.s.next_hop = "127.0.0.2:5070"
    scr.ranges = permitted_ranges(["127.0.0.1/32"])  # the next hop is outside: the call cannot leave
    scr.on_datagram(_invite(b"0912999999", AD, b"u1", b"z9hG4bK-u1"), UAC)
    (m, _), = _sent(scr)
    assert m.status == 503 and scr.stats["uncounted_unsent"] == 1
    scr.s.next_hop = "127.0.0.1:5070"
    scr.on_datagram(_invite(b"0912999999", AD, b"u1", b"z9hG4bK-u1b"), UAC)    # the caller's retry: judged again
    assert [x.method for x, _ in _sent(scr)] == ["INVITE"]
    assert scr.stats["screened"] == 2 and scr.stats["replayed"] == 0 and len(vlog.calls) == 2
    scr.on_datagram(_invite(b"0912999999", AD, b"u2", b"z9hG4bK-u2"), UAC)     # that sent call is counted
    (m, _), = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in (m.get("reason") or "")


def test_an_identity_that_is_no_number_does_not_hide_the_advertiser(tmp_path):
    """Found by the Decree 91 compliance probe: the caller was P-Asserted-Identity's user whatever it was, so an
    advertiser's INVITE with its registered number in From and `P-Asserted-Identity: <sip:anonymous@…>` (or a
    `<tel:anonymous>` beside its number) was judged as caller "anonymous" and rang a DNC callee; an anonymous From
    with the number in Remote-Party-ID (party=calling, the asserted identity of Cisco / Asterisk trunks) or in
    P-Preferred-Identity passed too. The caller is now the first identity that is a number: P-Asserted-Identity
    (tel first), From, Remote-Party-ID (party=calling or none), P-Preferred-Identity."""
    anon = b"anonymous"
    for i, (frm, extra) in enumerate((
            (AD, b"P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\nPrivacy: id\r\n"),
            (AD, b"P-Asserted-Identity: <sip:anonymous@anonymous.invalid>, <tel:+842439998888>\r\n"),
            (b"shopabc", b"P-Asserted-Identity: <sip:02439998888@127.0.0.1>\r\n"
                         b"P-Asserted-Identity: <tel:anonymous>\r\n"),
            (anon, b"Remote-Party-ID: <sip:02439998888@127.0.0.1>;party=calling;privacy=full;screen=yes\r\n"),
            (anon, b'Remote-Party-ID: "Shop" <sip:0912999999@127.0.0.1>;party=called, '
                   b"<tel:+842439998888>;screen=yes\r\n"),
            (anon, b"P-Preferred-Identity: <sip:02439998888@127.0.0.1>\r\n"))):
        scr, vlog, _ = _screen(tmp_path / str(i))
        scr.on_datagram(_invite(DNC_V, frm, b"id%d" % i, b"z9hG4bK-id%d" % i, extra=extra), UAC)
        (m, _), = _sent(scr)
        assert m.status == 608 and "AD_CALL_TO_DNC" in (m.get("reason") or ""), (i, m.status, vlog.calls[-1][2])


def test_an_asserted_number_still_wins_over_from(tmp_path):
    """The network's assertion is still believed before From (a call through a PBX: From its pilot number), and a
    Remote-Party-ID naming the called party is no caller; a caller with no number anywhere is judged as before."""
    scr, vlog, _ = _screen(tmp_path)
    scr.on_datagram(_invite(DNC_V, AD, b"w1", b"z9hG4bK-w1", extra=b"P-Asserted-Identity: <tel:+84901234567>\r\n"), UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"] and vlog.calls[-1][2] == "+84901234567"
    scr.on_datagram(_invite(DNC_V, b"0901234567", b"w2", b"z9hG4bK-w2",
                            extra=b"Remote-Party-ID: <sip:02439998888@127.0.0.1>;party=called\r\n"), UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"] and vlog.calls[-1][2] == "0901234567"
    for n, hdr in enumerate((b"Remote-Party-ID: <sip:0901234567@127.0.0.1>;party=calling\r\n",
                             b"P-Preferred-Identity: <sip:0901234567@127.0.0.1>\r\n")):
        # a header the caller adds never hides its From number (P-Asserted-Identity is the network's)
        scr.on_datagram(_invite(DNC_V, AD, b"wr%d" % n, b"z9hG4bK-wr%d" % n, extra=hdr), UAC)
        (m, _), = _sent(scr)
        assert m.status == 608 and vlog.calls[-1][2] == "02439998888"
    scr.on_datagram(_invite(DNC_V, b"anonymous", b"w3", b"z9hG4bK-w3",
                            extra=b"P-Asserted-Identity: <sip:private@127.0.0.1>\r\n"), UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"] and vlog.calls[-1][2] == "private"


def test_escaped_characters_in_a_tel_number_are_read_as_in_a_sip_user(tmp_path):
    """Found by the Decree 91 compliance probe: a sip user was unescaped (sip:%30912000002@h is 0912000002) but a
    tel number was not, so `From: <tel:%2B842439998888>` (the advertiser) and `INVITE tel:0%3912000002` (a DNC V
    callee) were judged as no number and let through; a next hop that unescapes reads the advertiser and the DNC
    number. An escaped '+' before a phone-context is read before the context is applied."""
    from engine.sip_screen.grammar import parse_uri
    assert parse_uri("tel:%2B84912000002").user == "+84912000002"
    assert parse_uri("tel:0%3912000002;phone-context=+84").user == "+84912000002"
    assert parse_uri("sip:%2B84912000002;phone-context=+84@127.0.0.1;user=phone").user == "+84912000002"
    scr, vlog, _ = _screen(tmp_path)
    scr.on_datagram(_invite(b"0912999999", AD, b"e0", b"z9hG4bK-e0"), UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"]
    scr.on_datagram(_invite(b"0912999999", b"x", b"e1", b"z9hG4bK-e1")
                    .replace(b"From: <sip:x@127.0.0.1>", b"From: <tel:%2B842439998888>"), UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in (m.get("reason") or ""), vlog.calls[-1][2]
    scr.on_datagram(_invite(DNC_V, AD, b"e2", b"z9hG4bK-e2").replace(b"INVITE sip:0912000002@127.0.0.1",
                                                                     b"INVITE tel:0%3912000002"), UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and "AD_CALL_TO_DNC" in (m.get("reason") or ""), vlog.calls[-1][3]


def test_the_same_invite_after_its_retransmission_window_is_a_new_call(tmp_path, monkeypatch):
    """Found by the Decree 91 compliance probe: an INVITE with the top Via branch of a call judged up to 180 s before
    was taken as a retransmission and forwarded unjudged, so an advertiser that sent its answered, ended ad call's
    INVITE again byte for byte (a new call to the next hop once its transaction is gone, 64*T1 after its final:
    RFC 3261 §17.2.1, RFC 6026) rang the same callee again and again for 3 minutes without meeting the one-a-day
    cap. A retransmission comes within Timer B (64*T1 = 32 s) of its INVITE; later, the same branch is a new call."""
    import engine.sip_screen.screening as screening
    clock = [1000.0]
    monkeypatch.setattr(screening.time, "monotonic", lambda: clock[0])
    scr, vlog, _ = _screen(tmp_path)
    first = _invite(b"0912999999", AD, b"rt1", b"z9hG4bK-rt1")
    scr.on_datagram(first, UAC)
    (fwd, _), = _sent(scr)
    scr.on_datagram(make_response(fwd, 200, "OK", "uas", [["Contact", "<sip:0912999999@127.0.0.1:5070>"]]).to_bytes(), UAS)
    assert [m.status for m, _ in _sent(scr)] == [200]
    clock[0] += 20.0                                        # within Timer B: a retransmission, replayed
    scr.on_datagram(first, UAC)
    assert [m.method for m, _ in _sent(scr)] == ["INVITE"] and scr.stats["replayed"] == 1
    clock[0] += 20.0                                        # 40 s after: the same bytes are another call
    scr.on_datagram(first, UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and "AD_CALL_FREQUENCY_CAP" in (m.get("reason") or "")
    assert scr.stats["screened"] == 2 and len(vlog.calls) == 2
    clock[0] += 10.0                                        # and its own retransmission gets its answer
    scr.on_datagram(first, UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and scr.stats["screened"] == 2


def test_an_escaped_semicolon_starts_the_numbers_parameters(tmp_path):
    """A known limit until stop 37: an escaped ';' in the number (sip:0912000002%3Bnpdi@h, tel:0912000002%3Bx=1)
    read as no number (the unescaped user '0912000002;npdi' is no number), so an ad call to a DNC V callee so
    written went out; a next hop that unescapes calls 0912000002. It starts the parameters, as a written one does
    (a phone-context in it applies)."""
    from engine.sip_screen.grammar import parse_uri
    assert parse_uri("sip:0912000002%3Bnpdi@127.0.0.1").user == "0912000002"
    assert parse_uri("tel:0912000002%3bx=1").user == "0912000002"
    assert parse_uri("sip:912000002%3Bphone-context=%2B84@127.0.0.1;user=phone").user == "+84912000002"
    assert parse_uri("tel:2439998888%3Bphone-context=+84;y=2").user == "+842439998888"
    scr, vlog, _ = _screen(tmp_path)
    scr.on_datagram(_invite(b"0912000002%3Bnpdi", AD, b"s1", b"z9hG4bK-s1"), UAC)
    (m, _), = _sent(scr)
    assert m.status == 608 and "AD_CALL_TO_DNC" in (m.get("reason") or ""), vlog.calls[-1]
