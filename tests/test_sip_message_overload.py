"""A SIP MESSAGE is judged at an INVITE's cost (45-75 µs of CPU), so a flood of them is held by the INVITEs' overload
defences (shares.py): while the screen is behind, a MESSAGE from a source over its fair share is dropped unread and
counted, another source's is judged. Found by the msgflood probe: a UDP MESSAGE flood from one address left a
sipp caller at 20 calls a second with 9 of 80 calls failed and a median INVITE answer of 3.5 s (the kernel's queue
dropping everyone's), where the same flood made of INVITEs left it 1 failed, 8 ms. And MESSAGE transactions are kept
apart from the INVITEs' (`transactions`): a flood of unique MESSAGEs pushed a call's INVITE out, and its
retransmission was judged again, a second verdict line for one call. In process (offline_screen)."""
import io
import json
import time

import pytest

from engine.app import build
from engine.sip_screen import server, shares
from engine.sip_screen.codec import parse_datagram
from engine.sip_screen.transport import Pump, make_pump
from engine.verdictlog import VerdictLog

from .sip_flood_sim import flood_through
from .sip_helpers import UAC, invite, offline_screen
from .test_sip_message import message

FLOODER = ("127.0.0.2", 5080)


def test_behind_a_message_over_its_sources_share_is_dropped_unread_and_counted_another_sources_is_judged():
    scr = offline_screen(build(with_model=False, persist=False))
    for i in range(shares.MIN_COUNT):
        scr.on_datagram(message(call_id=f"f{i}", branch=f"z9hG4bK-f{i}"), FLOODER)
    scr.on_datagram(invite(call_id="u1"), UAC)
    assert scr.stats["messages_judged"] == shares.MIN_COUNT and len(scr.udp.out) == shares.MIN_COUNT + 1
    scr.udp.out.clear()
    scr.udp.behind = time.monotonic() - 0.3                  # behind for 0.3 s (overload_after 0.25)
    scr.on_datagram(message(call_id="f-over", branch="z9hG4bK-fo"), FLOODER)
    assert scr.udp.out == [] and scr.stats["messages_judged"] == shares.MIN_COUNT
    assert scr.stats["overload_source_dropped"] == 1 and scr.stats["messages_overload_dropped"] == 1
    scr.on_datagram(message(frm="0907770001", to="0918880002", call_id="u-msg", branch="z9hG4bK-um"), UAC)  # judged
    scr.on_datagram(invite(call_id="u2"), UAC)
    assert [parse_datagram(d).method for d, _ in scr.udp.out] == ["MESSAGE", "INVITE"]
    assert scr.stats["messages_judged"] == shares.MIN_COUNT + 1
    scr.udp.out.clear()
    scr.on_datagram(invite(call_id="f-invite"), FLOODER)     # its INVITEs and MESSAGEs share one count
    assert scr.udp.out == [] and scr.stats["overload_source_dropped"] == 2
    scr.s.judge_messages = False                             # relayed unjudged (~11 µs): not counted, not dropped
    scr.on_datagram(message(call_id="f-relay", branch="z9hG4bK-fr"), FLOODER)
    assert len(scr.udp.out) == 1 and scr.stats["overload_source_dropped"] == 2


def test_on_a_fake_clock_a_message_flood_leaves_another_sources_calls_judged_as_an_invite_flood_does(monkeypatch):
    # tests/sip_flood_sim.py (the kernel's queue of 256, rounds of 8, 1 ms to judge, 10 us to drop unread): 4,000
    # MESSAGEs a second from one address beside a caller sending 20 calls; before, 22 of its 180 calls were judged
    # (158 lost in the kernel's queue), with the same flood made of INVITEs 177
    def flood(call_id, via_port):
        return message(call_id=call_id, branch=f"z9hG4bK-{call_id}")
    r = flood_through(monkeypatch, overload_after=0.25, seconds=9.0, flood=flood)
    caller, flooder = r["caller"], r["flooder"]
    assert flooder["dropped_unread"] > flooder["judged"] > 0, r
    assert caller["dropped_unread"] == 0 and caller["lost"] <= 20 * 0.25, r
    assert caller["judged"] == caller["sent"] - caller["lost"], r


def test_a_flood_of_unique_messages_does_not_push_an_invite_out_of_the_transaction_memory(monkeypatch):
    monkeypatch.setattr(server, "VERDICTS", 64)              # the INVITEs' memories, small (131,072 in service)
    buf = io.StringIO()
    scr = offline_screen(build(with_model=False, persist=False), VerdictLog(buf))
    call = invite(call_id="kept@127.0.0.1")
    scr.on_datagram(call, UAC)
    for i in range(100):                                     # more MESSAGE transactions than the INVITEs' memory
        scr.on_datagram(message(call_id=f"m{i}", branch=f"z9hG4bK-m{i}"), FLOODER)
    scr.on_datagram(call, UAC)                               # the INVITE's retransmission: its answer again
    kinds = [json.loads(x)["kind"] for x in buf.getvalue().splitlines()]
    assert kinds.count("call") == 1 and kinds.count("sms") == 100, kinds
    assert scr.stats["call_id_reused"] == 0 and scr.stats["replayed"] == 1


@pytest.mark.skipif(Pump is None, reason="C extension not built")
def test_the_c_pump_counts_and_drops_a_message_flood_as_the_python_reader_does():
    # the pump hands every MESSAGE (and anything after CRLFs) to on_datagram before doing anything for it
    # (_sipdatagram.h, _sipdialog.h): its counts while behind are the Python reader's
    counted = ("overload_source_dropped", "messages_overload_dropped", "messages_judged", "screened", "fast_path")
    got = []
    for via_pump in (True, False):
        scr = offline_screen(build(with_model=False, persist=False))
        handle = make_pump(scr, -1, scr.udp.sendto).handle if via_pump else scr.on_datagram
        for i in range(shares.MIN_COUNT):
            handle(message(call_id=f"f{i}", branch=f"z9hG4bK-f{i}"), FLOODER)
        handle(invite(call_id="u1"), UAC)
        scr.udp.behind = time.monotonic() - 0.3
        for i, prefix in enumerate((b"", b"\r\n", b"\n\r\n")):
            handle(prefix + message(call_id=f"o{i}", branch=f"z9hG4bK-o{i}"), FLOODER)
            handle(prefix + message(call_id=f"o{i}", branch=f"z9hG4bK-o{i}", to_tag="made-up"), FLOODER)
        handle(message(frm="0907770001", call_id="u-msg", branch="z9hG4bK-um"), UAC)
        got.append({k: scr.stats[k] for k in counted})
    assert got[0] == got[1] and got[0]["messages_overload_dropped"] == 6, got
